#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mastodon-restore contributors
# License: the project's (packaging/debian/copyright; not chosen yet)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: info
short_description: Facts about the mastodon-restore agent of a host
description:
  - Asks the agent on the managed host for its version, the host, the Mastodon
    runtime it detected, the PostgreSQL tools and server, and the media directory.
  - Sets the fact C(mastodon_restore) and returns the agent's whole answer.
version_added: "0.1.0"
author: mastodon-restore contributors (@mastodon-restore)
extends_documentation_fragment:
  - mastodon.restore.agent
attributes:
  check_mode:
    support: full
    description: Reads only; runs in check mode too.
options: {}
'''

EXAMPLES = r'''
- name: Read the agent's facts
  mastodon.restore.info:

- name: Only hosts with a Mastodon runtime
  ansible.builtin.debug:
    msg: "{{ inventory_hostname }} runs {{ mastodon_restore.runtime.kind }}"
  when: mastodon_restore.runtime.kind != 'RUNTIME_KIND_NONE'
'''

RETURN = r'''
info:
  description: The agent's GetAgentInfoResponse in protobuf's JSON mapping (proto field names).
  returned: success
  type: dict
ansible_facts:
  description: Facts about the agent.
  returned: success
  type: dict
  contains:
    mastodon_restore:
      description: The agent's facts.
      type: dict
      contains:
        agent:
          description: The agent's build (version, commit, libraries).
          type: dict
        host:
          description: Host name, CPUs, memory, state directory, allowed roots.
          type: dict
        runtime:
          description: The Mastodon runtime (kind, evidence, Mastodon and schema versions).
          type: dict
        postgres:
          description: libpq and pg_restore versions, the target server's version.
          type: dict
        media:
          description: The media directory, its owner and free bytes.
          type: dict
        capabilities:
          description: What the agent offers.
          type: list
          elements: str
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mastodon.restore.plugins.module_utils.agent_cli import (
    AgentCli, agent_argument_spec)


def main():
    module = AnsibleModule(argument_spec=agent_argument_spec(), supports_check_mode=True)
    info = AgentCli(module).call(['info'])
    runtime = info.get('runtime', {})
    facts = dict(
        agent=info.get('build', {}),
        host=info.get('host', {}),
        runtime=runtime,
        postgres=info.get('postgres', {}),
        media=dict(dir=runtime.get('media_dir', ''), owner=runtime.get('media_owner', ''),
                   free_bytes=runtime.get('media_dir_free_bytes', '0')),
        capabilities=info.get('capabilities', []),
    )
    module.exit_json(changed=False, info=info, ansible_facts=dict(mastodon_restore=facts))


if __name__ == '__main__':
    main()
