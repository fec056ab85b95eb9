#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mastodon-restore contributors
# License: the project's (packaging/debian/copyright; not chosen yet)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: inspect
short_description: Inventory of a Mastodon backup on a host
description:
  - Asks the agent what a backup on the managed host holds (layout, env file,
    dumps and their versions, media) and whether it fits the host's PostgreSQL.
  - Changes nothing.
version_added: "0.1.0"
author: mastodon-restore contributors (@mastodon-restore)
extends_documentation_fragment:
  - mastodon.restore.agent
  - mastodon.restore.source
attributes:
  check_mode:
    support: full
    description: Reads only; runs in check mode too.
options:
  source:
    description:
      - The backup on the managed host (archive, directory or dump), within the agent's allowed roots.
    type: path
    required: true
  deep:
    description:
      - Stream the whole dump (row counts, schema version, all databases).
    type: bool
    default: false
  target_conninfo:
    description:
      - Judge compatibility against this PostgreSQL server (libpq conninfo) instead of the agent's.
    type: str
'''

EXAMPLES = r'''
- name: What the newest backup holds
  mastodon.restore.inspect:
    source: /var/backups/mastodon/latest.tar.zst
  register: backup

- name: Refuse a dump the host's PostgreSQL cannot load
  ansible.builtin.assert:
    that: backup.manifest.dumps | length > 0
'''

RETURN = r'''
manifest:
  description: The agent's BackupManifest in protobuf's JSON mapping (proto field names).
  returned: success
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mastodon.restore.plugins.module_utils.agent_cli import (
    AgentCli, source_argument_spec, source_flags)


def main():
    module = AnsibleModule(
        argument_spec=source_argument_spec(
            source=dict(type='path', required=True),
            deep=dict(type='bool', default=False),
        ),
        supports_check_mode=True)
    args = ['inspect'] + source_flags(module.params)
    if module.params['deep']:
        args.append('--deep')
    response = AgentCli(module).call(args + ['--', module.params['source']])
    module.exit_json(changed=False, manifest=response.get('manifest', {}))


if __name__ == '__main__':
    main()
