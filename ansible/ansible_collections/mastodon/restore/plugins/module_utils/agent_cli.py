# -*- coding: utf-8 -*-
# Copyright: mastodon-restore contributors
# License: the project's (packaging/debian/copyright; not chosen yet)
"""The modules' one way to the agent: the installed mastodon-restore CLI.

Every call runs the CLI with --json (argv, never a shell) and reads the
protobuf JSON mapping it prints (proto field names). A failed call fails the
module with the CLI's exit code, its documented meaning and the agent's
message.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json

# The CLI's documented exit codes (cli/exit_codes.h); never renumbered.
EXIT_CODE_MEANINGS = {
    0: 'ok',
    1: 'failed',
    2: 'usage',
    3: 'agent unreachable',
    4: 'invalid input',
    5: 'failed precondition',
    6: 'cancelled',
    7: 'permission denied',
    8: 'unsupported',
}

# Terminal operation states (proto OperationState).
ENDED_STATES = frozenset([
    'OPERATION_STATE_SUCCEEDED',
    'OPERATION_STATE_FAILED',
    'OPERATION_STATE_CANCELLED',
    'OPERATION_STATE_INTERRUPTED',
])

# Steps whose success changed the host: the database swapped in (restore,
# rollback), media, env file, migrations, tootctl tasks. A failed operation
# reports a change only if one of them succeeded before it failed.
CHANGING_STEPS = frozenset(['swap', 'media', 'config', 'migrate', 'cleanup', 'refresh'])

# The options every module takes to reach the agent (doc fragment "agent").
AGENT_ARGUMENT_SPEC = dict(
    agent=dict(type='str'),
    cli_path=dict(type='path', default='mastodon-restore'),
    call_timeout=dict(type='str', default='30s'),
    token_file=dict(type='path', no_log=False),
    tls_ca=dict(type='path'),
    tls_cert=dict(type='path'),
    tls_key=dict(type='path', no_log=False),
)


# The options of a module that opens a backup: its secrets (doc fragment
# "source") and the server it is judged against or restored into (each
# module documents target_conninfo), with their CLI flags.
SOURCE_ARGUMENT_SPEC = dict(
    password_file=dict(type='path', no_log=False),
    age_identity=dict(type='path'),
    gpg_key=dict(type='path', no_log=False),
    target_conninfo=dict(type='str', no_log=True),
)
_SOURCE_FLAGS = (('password_file', '--password-file'), ('age_identity', '--age-identity'),
                 ('gpg_key', '--gpg-key'), ('target_conninfo', '--target-conninfo'))


def agent_argument_spec(**extra):
    """The agent options plus a module's own `extra` options."""
    spec = dict(AGENT_ARGUMENT_SPEC)
    spec.update(extra)
    return spec


def source_argument_spec(**extra):
    """The agent and source options plus a module's own `extra` options."""
    return agent_argument_spec(**dict(SOURCE_ARGUMENT_SPEC, **extra))


def source_flags(params):
    """The CLI flags of the source options set in `params`."""
    args = []
    for option, flag in _SOURCE_FLAGS:
        if params.get(option):
            args += [flag, params[option]]
    return args


def exit_code_meaning(rc):
    """The documented meaning of the CLI exit code `rc`."""
    return EXIT_CODE_MEANINGS.get(rc, 'unknown exit code %s' % rc)


def operation_exit_code(operation):
    """The CLI's exit code for an ended `operation` (cli/follow.cc)."""
    state = operation.get('state')
    if state == 'OPERATION_STATE_SUCCEEDED':
        return 0
    if state == 'OPERATION_STATE_CANCELLED':
        return 6
    return 1


class AgentCli(object):
    """Runs the mastodon-restore CLI for a module."""

    def __init__(self, module):
        self.module = module
        params = module.params
        self.cli = module.get_bin_path(params['cli_path'], required=False) or params['cli_path']
        self.global_args = ['--json', '--timeout', params['call_timeout']]
        if params.get('agent'):
            self.global_args += ['--agent', params['agent']]
        for option, flag in (('token_file', '--token-file'), ('tls_ca', '--tls-ca'),
                             ('tls_cert', '--tls-cert'), ('tls_key', '--tls-key')):
            if params.get(option):
                self.global_args += [flag, params[option]]

    def run(self, args):
        """Runs the CLI with `args`; returns (rc, stdout, stderr)."""
        argv = [self.cli] + self.global_args + list(args)
        return self.module.run_command(argv, check_rc=False, environ_update={'LC_ALL': 'C'})

    def fail(self, rc, stderr, msg=None, **result):
        """Fails the module with the CLI's exit code, its meaning and message."""
        message = msg or error_message(stderr) or 'mastodon-restore exited with %d' % rc
        self.module.fail_json(msg=message, rc=rc, exit_code_meaning=exit_code_meaning(rc),
                              stderr=stderr, **result)

    def call(self, args):
        """Runs a command that prints one JSON document; returns it (dict).

        Fails the module when the CLI fails or prints no JSON.
        """
        rc, out, err = self.run(args)
        if rc != 0:
            self.fail(rc, err)
        return self.parse(out, err)

    def parse(self, out, err):
        """The JSON document `out`, or a module failure."""
        try:
            return json.loads(out)
        except ValueError:
            self.module.fail_json(msg='mastodon-restore printed no JSON', stdout=out, stderr=err,
                                  rc=1, exit_code_meaning=exit_code_meaning(1))

    def follow(self, args):
        """Runs a command that follows an operation (one WatchOperationResponse
        per line); returns (rc, operation as it ended or None, stderr)."""
        rc, out, err = self.run(args)
        operation = None
        for line in out.splitlines():
            line = line.strip()
            if not line.startswith('{'):
                continue
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if message.get('operation'):
                operation = message['operation']
        return rc, operation, err

    def get_operation(self, operation_id):
        """The operation `operation_id` as it is now."""
        return self.call(['ops', 'show', '--', operation_id]).get('operation', {})

    def list_operations(self):
        """Every operation the agent keeps, newest first."""
        return self.call(['ops', 'list']).get('operations', [])

    def find_request(self, request_id):
        """The operation started with idempotency key `request_id`, or None."""
        if not request_id:
            return None
        for operation in self.list_operations():
            if operation.get('request_id') == request_id:
                return operation
        return None

    def wait(self, operation_id):
        """Follows `operation_id` until it ends; returns (rc, operation)."""
        rc, operation, err = self.follow(['ops', 'watch', '--', operation_id])
        # The exit code is the operation's when it ended (a failed one's
        # error may map to any code), the call's when the CLI lost it: the
        # operation's state tells which (and an agent that cannot answer
        # fails the module here).
        final = self.get_operation(operation_id) or operation or {}
        if final.get('state') not in ENDED_STATES:
            self.fail(rc or 1, err, operation=final)
        return rc, final

    def start(self, command, args, request_id, wait):
        """Starts an operation with `command` (a Start* command of the CLI:
        "restore", "rollback") and its `args` and, if `wait`,
        follows it to its end. Returns (changed, operation) and fails the
        module when the operation failed (with its error) or never started.

        `changed` is false when `request_id` names an operation the agent
        already has: the agent returns it and starts nothing.
        """
        existing = self.find_request(request_id)
        argv = [command, '--detach']
        if request_id:
            argv += ['--request-id', request_id]
        started = self.call(argv + list(args)).get('operation', {})
        operation = started
        if wait and started.get('state') not in ENDED_STATES:
            rc, operation = self.wait(started['id'])
        elif wait:
            operation = self.get_operation(started['id']) or started
        changed = existing is None
        if operation.get('state') in ENDED_STATES and \
                operation.get('state') != 'OPERATION_STATE_SUCCEEDED':
            self.fail_operation(operation, changed=changed and changed_anything(operation))
        return changed, operation

    def fail_operation(self, operation, **result):
        """Fails the module with an ended, unsuccessful `operation`."""
        error = operation.get('error') or {}
        rc = operation_exit_code(operation)
        code = error.get('code')
        if operation.get('state') == 'OPERATION_STATE_FAILED' and code is not None:
            rc = grpc_exit_code(code)
        message = error.get('message') or 'operation %s ended %s' % (
            operation.get('id'), operation.get('state'))
        if error.get('step'):
            message = '%s (step %s)' % (message, error['step'])
        self.module.fail_json(msg=message, rc=rc, exit_code_meaning=exit_code_meaning(rc),
                              operation=operation, **result)


# gRPC status code -> CLI exit code (cli/exit_codes.cc ExitCodeFor).
_GRPC_EXIT_CODES = {
    0: 0,
    14: 3, 4: 3,  # UNAVAILABLE, DEADLINE_EXCEEDED
    3: 4, 5: 4, 11: 4, 6: 4,  # INVALID_ARGUMENT, NOT_FOUND, OUT_OF_RANGE, ALREADY_EXISTS
    9: 5, 10: 5, 8: 5,  # FAILED_PRECONDITION, ABORTED, RESOURCE_EXHAUSTED
    1: 6,  # CANCELLED
    7: 7, 16: 7,  # PERMISSION_DENIED, UNAUTHENTICATED
    12: 8,  # UNIMPLEMENTED
}


def grpc_exit_code(code):
    """The CLI exit code of a failed operation whose error has gRPC `code`."""
    rc = _GRPC_EXIT_CODES.get(int(code), 1)
    return 1 if rc == 0 else rc


def changed_anything(operation):
    """Whether a step of `operation` that changes the host succeeded."""
    return any(step.get('name') in CHANGING_STEPS and step.get('state') == 'STEP_STATE_SUCCEEDED'
               for step in operation.get('steps', []))


def error_message(stderr):
    """The CLI's error line ("mastodon-restore: error: ...") without prefix."""
    prefix = 'mastodon-restore: error: '
    lines = [line for line in (stderr or '').splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith(prefix):
            return line[len(prefix):]
    return lines[-1] if lines else ''
