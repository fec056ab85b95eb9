# -*- coding: utf-8 -*-
# Copyright: mastodon-restore contributors
# License: the project's (packaging/debian/copyright; not chosen yet)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    """The options every module of mastodon.restore takes to reach the agent."""

    DOCUMENTATION = r'''
options:
  agent:
    description:
      - Address of the agent, as the CLI's C(--agent) takes it
        (a unix socket path, C(unix:PATH) or C(HOST:PORT)).
      - Default is C($MASTODON_RESTORE_AGENT) on the managed host, else
        C(/run/mastodon-restore/agent.sock).
    type: str
  cli_path:
    description:
      - The mastodon-restore CLI on the managed host (a name looked up in
        C(PATH), or a path).
    type: path
    default: mastodon-restore
  call_timeout:
    description:
      - Deadline of each call to the agent (the CLI's C(--timeout)), e.g. C(30s), C(2m).
      - Following a long operation is not bounded by it.
    type: str
    default: 30s
  token_file:
    description:
      - File on the managed host holding a bearer token, for a TCP agent run with C(--tokens).
    type: path
  tls_ca:
    description:
      - PEM CA bundle that signed the agent's certificate (TCP agents).
    type: path
  tls_cert:
    description:
      - Client certificate for mutual TLS (TCP agents).
    type: path
  tls_key:
    description:
      - Client key for mutual TLS (TCP agents).
    type: path
requirements:
  - the mastodon-restore package (its CLI and a running agent) on the managed host
notes:
  - The modules run the installed C(mastodon-restore) CLI with C(--json); they
    need nothing but Python's standard library on the managed host.
  - A failure carries C(rc), the CLI's exit code, and C(exit_code_meaning), its
    documented meaning (C(agent unreachable), C(invalid input),
    C(failed precondition), ...).
'''
