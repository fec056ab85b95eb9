#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mastodon-restore contributors
# License: the project's (packaging/debian/copyright; not chosen yet)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: operation
short_description: Show, wait for, watch or cancel an operation of the agent
description:
  - C(show) returns an operation as it is now.
  - C(wait) follows it until it ends, or, with C(until_step) or C(until_state),
    until a step has finished or it reaches one of the states; fails with the
    agent's error if it ends unsuccessfully (see C(fail_on_error)).
  - C(cancel) asks the agent to cancel it (changed only if it had not ended)
    and waits until its cleanup has run.
version_added: "0.1.0"
author: mastodon-restore contributors (@mastodon-restore)
extends_documentation_fragment:
  - mastodon.restore.agent
attributes:
  check_mode:
    support: full
    description: C(show) and C(wait) read only; C(cancel) reports whether it would cancel.
options:
  id:
    description:
      - The operation's id (C(operation.id) of M(mastodon.restore.restore) with C(wait=false)).
    type: str
    required: true
  action:
    description:
      - What to do with the operation.
    type: str
    choices: [show, wait, cancel]
    default: wait
  until_step:
    description:
      - With C(wait), return once this step (e.g. C(load), C(swap)) has finished.
    type: str
  until_state:
    description:
      - With C(wait), return once the operation is in one of these states
        (C(running), C(succeeded), ... or the proto's C(OPERATION_STATE_*) names).
    type: list
    elements: str
  timeout:
    description:
      - With C(wait), fail after this many seconds (0 waits as long as it takes).
    type: int
    default: 0
  poll_interval:
    description:
      - Seconds between two looks at the operation when C(until_step),
        C(until_state) or C(timeout) is set (otherwise the agent's event stream is followed).
    type: int
    default: 2
  fail_on_error:
    description:
      - Fail when the operation ended failed, cancelled or interrupted (C(wait) only).
    type: bool
    default: true
'''

EXAMPLES = r'''
- name: Start a restore without waiting
  mastodon.restore.restore:
    source: /var/backups/mastodon/latest.tar.zst
    wait: false
  register: started

- name: Wait until the database is swapped in
  mastodon.restore.operation:
    id: "{{ started.operation.id }}"
    until_step: swap

- name: Wait for the end
  mastodon.restore.operation:
    id: "{{ started.operation.id }}"
    timeout: 3600

- name: Cancel it
  mastodon.restore.operation:
    id: "{{ started.operation.id }}"
    action: cancel
'''

RETURN = r'''
operation:
  description: The operation (mastodon.restore.v1.Operation in protobuf's JSON mapping, proto field names).
  returned: always
  type: dict
ended:
  description: Whether the operation has ended.
  returned: always
  type: bool
reached:
  description: With C(until_step) or C(until_state), whether the condition held (it may have ended before).
  returned: when waiting with a condition
  type: bool
'''

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mastodon.restore.plugins.module_utils.agent_cli import (
    ENDED_STATES, AgentCli, agent_argument_spec)

FINISHED_STEP_STATES = frozenset(['STEP_STATE_SUCCEEDED', 'STEP_STATE_FAILED',
                                  'STEP_STATE_SKIPPED', 'STEP_STATE_CANCELLED'])


def state_name(name):
    """OPERATION_STATE_<NAME> for `name` given short or in full."""
    name = name.strip().upper()
    return name if name.startswith('OPERATION_STATE_') else 'OPERATION_STATE_' + name


def reached(operation, until_step, until_states):
    """Whether `operation` meets the wait condition."""
    if until_states and operation.get('state') in until_states:
        return True
    if until_step:
        for step in operation.get('steps', []):
            if step.get('name') == until_step and step.get('state') in FINISHED_STEP_STATES:
                return True
    return False


def main():
    module = AnsibleModule(
        argument_spec=agent_argument_spec(
            id=dict(type='str', required=True),
            action=dict(type='str', default='wait', choices=['show', 'wait', 'cancel']),
            until_step=dict(type='str'),
            until_state=dict(type='list', elements='str'),
            timeout=dict(type='int', default=0),
            poll_interval=dict(type='int', default=2),
            fail_on_error=dict(type='bool', default=True),
        ),
        supports_check_mode=True)
    params = module.params
    cli = AgentCli(module)
    operation_id = params['id']
    operation = cli.get_operation(operation_id)

    if params['action'] == 'show':
        module.exit_json(changed=False, operation=operation,
                         ended=operation.get('state') in ENDED_STATES)

    if params['action'] == 'cancel':
        if operation.get('state') in ENDED_STATES:
            module.exit_json(changed=False, operation=operation, ended=True)
        if module.check_mode:
            module.exit_json(changed=True, operation=operation, ended=False)
        rc, out, err = cli.run(['ops', 'cancel', '--', operation_id])
        if rc != 0:
            # It may have ended since: the agent refuses to cancel an ended one.
            operation = cli.get_operation(operation_id)
            if operation.get('state') in ENDED_STATES:
                module.exit_json(changed=False, operation=operation, ended=True)
            cli.fail(rc, err, operation=operation)
        rc, operation = cli.wait(operation_id)
        module.exit_json(changed=True, operation=operation,
                         ended=operation.get('state') in ENDED_STATES)

    until_step = params['until_step']
    until_states = [state_name(s) for s in params['until_state'] or []]
    result = {}
    if until_step or until_states or params['timeout'] > 0:
        deadline = time.time() + params['timeout'] if params['timeout'] > 0 else None
        while True:
            if reached(operation, until_step, until_states):
                result['reached'] = True
                break
            if operation.get('state') in ENDED_STATES:
                if until_step or until_states:
                    result['reached'] = False
                break
            if deadline is not None and time.time() >= deadline:
                module.fail_json(msg='operation %s did not get there within %d s' % (
                    operation_id, params['timeout']), operation=operation, timed_out=True,
                    ended=False)
            time.sleep(max(1, params['poll_interval']))
            operation = cli.get_operation(operation_id)
    else:
        rc, operation = cli.wait(operation_id)
    ended = operation.get('state') in ENDED_STATES
    if ended and params['fail_on_error'] and operation.get('state') != 'OPERATION_STATE_SUCCEEDED':
        cli.fail_operation(operation, changed=False, ended=True, **result)
    module.exit_json(changed=False, operation=operation, ended=ended, **result)


if __name__ == '__main__':
    main()
