#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mastodon-restore contributors
# License: the project's (packaging/debian/copyright; not chosen yet)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: verify_backup
short_description: Prove that a Mastodon backup restores
description:
  - Restores the backup's database on the managed host into a scratch database
    (C(mastodon_verify_*)), checks it against the dump (tables, row counts,
    schema, indexes, sequences) and the media, then drops it; writes a JUnit
    report with one test case per check.
  - Uses the host's agent, or, when none runs (or with C(local=true)), a
    private agent on its own embedded PostgreSQL.
  - Leaves nothing behind but the report, so it reports no change; it runs in
    check mode too.
version_added: "0.1.0"
author: mastodon-restore contributors (@mastodon-restore)
extends_documentation_fragment:
  - mastodon.restore.agent
  - mastodon.restore.source
attributes:
  check_mode:
    support: full
    description: Changes nothing lasting; runs in check mode too.
options:
  source:
    description:
      - The backup on the managed host (archive, directory or dump).
    type: path
    required: true
  junit:
    description:
      - Where to write the JUnit XML report on the managed host.
      - Default is a new file C(mastodon-restore-junit-*.xml) in the temp directory.
    type: path
  target_db:
    description:
      - The scratch database; must start with C(mastodon_verify_) (default is a new name).
    type: str
  member:
    description:
      - The dump inside the source when it holds several.
    type: str
  max_age:
    description:
      - Fail when the backup's newest status is older than this many days (0 never).
    type: int
    default: 0
  local:
    description:
      - Use a private agent (embedded PostgreSQL) even if the host's agent runs.
    type: bool
    default: false
  target_conninfo:
    description:
      - PostgreSQL server for the scratch database (libpq conninfo); default is the agent's.
    type: str
'''

EXAMPLES = r'''
- name: Prove last night's backup
  mastodon.restore.verify_backup:
    source: /var/backups/mastodon/latest.tar.zst
    junit: /var/tmp/mastodon-backup-junit.xml
  register: proof

- name: Bring the report to the controller
  ansible.builtin.fetch:
    src: "{{ proof.junit }}"
    dest: "reports/{{ inventory_hostname }}.xml"
    flat: true
'''

RETURN = r'''
passed:
  description: Whether the backup restored and every check passed.
  returned: always
  type: bool
junit:
  description: The JUnit XML report's path on the managed host.
  returned: always
  type: str
report:
  description:
    - The CLI's verify-backup report - C(source), C(database), C(passed),
      C(exit_code), and the C(restore) and C(verify) operations in protobuf's
      JSON mapping (C(verify) null when the restore failed).
  returned: when the CLI printed one
  type: dict
'''

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mastodon.restore.plugins.module_utils.agent_cli import (
    AgentCli, exit_code_meaning, source_argument_spec, source_flags)


def main():
    module = AnsibleModule(
        argument_spec=source_argument_spec(
            source=dict(type='path', required=True),
            junit=dict(type='path'),
            target_db=dict(type='str'),
            member=dict(type='str'),
            max_age=dict(type='int', default=0),
            local=dict(type='bool', default=False),
        ),
        supports_check_mode=True)
    params = module.params
    junit = params['junit']
    if not junit:
        handle, junit = tempfile.mkstemp(prefix='mastodon-restore-junit-', suffix='.xml')
        os.close(handle)
    args = ['verify-backup', '--junit', junit]
    for option, flag in (('target_db', '--target-db'), ('member', '--member')):
        if params.get(option):
            args += [flag, params[option]]
    args += source_flags(params)
    if params['max_age']:
        args += ['--max-age', str(params['max_age'])]
    if params['local']:
        args.append('--local')
    cli = AgentCli(module)
    rc, out, err = cli.run(args + ['--', params['source']])
    report = None
    if out.strip():
        report = cli.parse(out, err)
    if rc != 0:
        message = None
        for part in ('verify', 'restore'):
            operation = (report or {}).get(part) or {}
            if (operation.get('error') or {}).get('message'):
                message = operation['error']['message']
                break
        failed = [check.get('name') for check in
                  ((report or {}).get('verify') or {}).get('verify_result', {}).get('checks', [])
                  if not check.get('passed')]
        if message is None and failed:
            message = 'checks failed: %s' % ', '.join(failed)
        cli.fail(rc, err, msg=message, passed=False, junit=junit, report=report)
    module.exit_json(changed=False, passed=True, junit=junit, report=report,
                     exit_code_meaning=exit_code_meaning(rc))


if __name__ == '__main__':
    main()
