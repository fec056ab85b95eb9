#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mastodon-restore contributors
# License: the project's (packaging/debian/copyright; not chosen yet)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: rollback
short_description: Swap the database a restore replaced back in
description:
  - Starts a rollback on the managed host's agent - the kept previous database
    (C(<db>__previous_*), the newest unless C(previous) names one) becomes the
    live database again; the replaced one is kept under a new name.
  - By default waits until it ends and fails with the agent's error.
version_added: "0.1.0"
author: mastodon-restore contributors (@mastodon-restore)
extends_documentation_fragment:
  - mastodon.restore.agent
attributes:
  check_mode:
    support: full
    description: Reports that it would roll back; starts nothing.
options:
  database:
    description:
      - The live database to roll back.
    type: str
    required: true
  previous:
    description:
      - Which C(<db>__previous_*) database to swap in (default is the newest).
    type: str
  request_id:
    description:
      - Idempotency key. A rerun with the same key returns the first run's
        operation (and reports no change).
    type: str
  wait:
    description:
      - Follow the operation until it ends. C(false) returns the started operation.
    type: bool
    default: true
  target_conninfo:
    description:
      - PostgreSQL server (libpq conninfo); default is the agent's.
    type: str
'''

EXAMPLES = r'''
- name: Undo the last restore
  mastodon.restore.rollback:
    database: mastodon_production
'''

RETURN = r'''
operation:
  description:
    - The rollback operation in protobuf's JSON mapping (proto field names);
      C(rollback_result) names the restored and the replaced databases.
  returned: success and failure
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mastodon.restore.plugins.module_utils.agent_cli import (
    AgentCli, agent_argument_spec)


def main():
    module = AnsibleModule(
        argument_spec=agent_argument_spec(
            database=dict(type='str', required=True),
            previous=dict(type='str'),
            request_id=dict(type='str'),
            wait=dict(type='bool', default=True),
            target_conninfo=dict(type='str', no_log=True),
        ),
        supports_check_mode=True)
    params = module.params
    if module.check_mode:
        module.exit_json(changed=True, operation={},
                         msg='would roll back database %s' % params['database'])
    args = ['--database', params['database']]
    for option, flag in (('previous', '--previous'), ('target_conninfo', '--target-conninfo')):
        if params.get(option):
            args += [flag, params[option]]
    changed, operation = AgentCli(module).start('rollback', args, params['request_id'],
                                                params['wait'])
    module.exit_json(changed=changed, operation=operation)


if __name__ == '__main__':
    main()
