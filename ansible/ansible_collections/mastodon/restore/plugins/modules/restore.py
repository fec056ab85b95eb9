#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mastodon-restore contributors
# License: the project's (packaging/debian/copyright; not chosen yet)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: restore
short_description: Restore a Mastodon backup on a host through its agent
description:
  - Starts a restore on the managed host's agent - the database (loaded into a
    staging database, verified, swapped in with the previous one kept), the
    media, then the app's migrations and tootctl tasks; or only the database,
    or only the media.
  - By default waits until the operation ends and fails with the agent's error
    if it fails. With C(wait=false) returns the started operation at once; follow
    it with M(mastodon.restore.operation). Ansible's C(async)/C(poll) and
    C(async_status) work too.
  - In check mode asks the agent for the restore's plan (the steps it would run
    and those it would skip, with why) and starts nothing.
version_added: "0.1.0"
author: mastodon-restore contributors (@mastodon-restore)
extends_documentation_fragment:
  - mastodon.restore.agent
  - mastodon.restore.source
attributes:
  check_mode:
    support: full
    description: Returns the agent's plan; nothing is started.
options:
  source:
    description:
      - The backup on the managed host (archive, directory or dump), within the agent's allowed roots.
    type: path
    required: true
  mode:
    description:
      - What to restore - C(whole) (database, media, then the app's tasks),
        C(db_only) or C(media_only).
    type: str
    choices: [whole, db_only, media_only]
    default: whole
  request_id:
    description:
      - Idempotency key. A rerun with the same key returns the operation the
        first run started (and reports no change) instead of restoring again.
    type: str
  wait:
    description:
      - Follow the operation until it ends. C(false) returns the started operation.
    type: bool
    default: true
  target_db:
    description:
      - Database name to restore under (default is the dump's).
    type: str
  source_db:
    description:
      - For a pg_dumpall dump, the database to restore.
    type: str
  member:
    description:
      - The dump inside the source when it holds several.
    type: str
  media_dir:
    description:
      - Media directory (within the agent's C(--media-dir)).
    type: path
  media_tree:
    description:
      - The media tree to restore when the backup holds several (a root C(inspect) lists; C(.) for the top).
    type: str
  exclude_cache:
    description:
      - Skip C(cache/) (remote media a media refresh can fetch again).
    type: bool
    default: false
  verify_media:
    description:
      - Compare present media by SHA-256, not size and mtime.
    type: bool
    default: false
  keep_owners:
    description:
      - Require the dump's owner roles on the target.
    type: bool
    default: false
  allow_extensions:
    description:
      - Extensions allowed beside the agent's default list.
    type: list
    elements: str
    default: []
  drop_previous:
    description:
      - Drop the replaced database after a successful swap (no rollback possible then).
    type: bool
    default: false
  migrate:
    description:
      - Run the app's C(db:migrate) after the load.
    type: bool
    default: true
  cleanup:
    description:
      - Run C(tootctl preview_cards remove) and C(media remove).
    type: bool
    default: true
  refresh:
    description:
      - Run C(tootctl media refresh), C(accounts refresh) and C(feeds build).
    type: bool
    default: true
  search_deploy:
    description:
      - Run C(tootctl search deploy) after the restore when the app's env enables
        Elasticsearch or OpenSearch (C(ES_ENABLED=true)).
    type: bool
    default: true
  redis:
    description:
      - Put the backup's Redis dump (C(redis.rdb), C(dump.rdb)) in place of the host's Redis
        data; without one, home feeds are rebuilt with C(tootctl feeds build).
    type: bool
    default: true
  app_checks:
    description:
      - Check that the app answers once started again (web C(/health), streaming health,
        sidekiq running); a failed check fails the restore after the swap.
    type: bool
    default: true
  media_check:
    description:
      - Count the media files the restored database references that the media directory lacks
        (local ones are lost and listed as a warning; remote ones are re-fetchable).
    type: bool
    default: true
  refetch_missing_remote_media:
    description:
      - Fetch again, with C(tootctl) commands scoped to exactly them, the remote media whose
        cached files the media directory lacks.
    type: bool
    default: false
  refresh_days:
    description:
      - C(media refresh --days N) (0 is the agent's default, 1).
    type: int
    default: 0
  jobs:
    description:
      - Connections loading the database (0 is the agent's default, by cores; 1 is serial).
    type: int
    default: 0
  restore_config:
    description:
      - Install the backup's env file (the host's database and Redis settings are kept).
    type: bool
    default: false
  keep_services_stopped_on_failure:
    description:
      - Leave the app stopped when the restore fails.
    type: bool
    default: false
  target_conninfo:
    description:
      - PostgreSQL server to restore into (libpq conninfo); default is the agent's.
    type: str
'''

EXAMPLES = r'''
- name: Restore the database only, idempotently
  mastodon.restore.restore:
    source: /var/backups/mastodon/latest.tar.zst
    mode: db_only
    request_id: "restore-{{ inventory_hostname }}-20261203"
  register: restored

- name: The plan only
  mastodon.restore.restore:
    source: /var/backups/mastodon/latest.tar.zst
  check_mode: true
  register: plan

- name: Start, and follow later
  mastodon.restore.restore:
    source: /var/backups/mastodon/latest.tar.zst
    wait: false
  register: started
'''

RETURN = r'''
operation:
  description:
    - The restore operation (mastodon.restore.v1.Operation in protobuf's JSON
      mapping, proto field names) as it ended, or as it started with C(wait=false).
    - In check mode the plan, in state C(OPERATION_STATE_PENDING), never run.
  returned: always
  type: dict
plan:
  description: In check mode, the steps the restore would run or skip (state C(STEP_STATE_SKIPPED), message why).
  returned: check mode
  type: list
  elements: dict
rc:
  description: The CLI's exit code on failure.
  returned: failure
  type: int
exit_code_meaning:
  description: The documented meaning of C(rc), e.g. C(invalid input).
  returned: failure
  type: str
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mastodon.restore.plugins.module_utils.agent_cli import (
    AgentCli, source_argument_spec, source_flags)


def restore_args(params):
    """The CLI flags of `params` (all but --request-id, --detach and --plan)."""
    args = []
    if params['mode'] == 'db_only':
        args.append('--db-only')
    elif params['mode'] == 'media_only':
        args.append('--media-only')
    for option, flag in (('target_db', '--target-db'), ('source_db', '--source-db'),
                         ('member', '--member'), ('media_dir', '--media-dir'),
                         ('media_tree', '--media-tree')):
        if params.get(option):
            args += [flag, params[option]]
    args += source_flags(params)
    for option, flag in (('exclude_cache', '--exclude-cache'), ('verify_media', '--verify-media'),
                         ('keep_owners', '--keep-owners'), ('drop_previous', '--drop-previous'),
                         ('restore_config', '--restore-config'),
                         ('refetch_missing_remote_media', '--refetch-missing-remote-media'),
                         ('keep_services_stopped_on_failure', '--keep-services-stopped-on-failure')):
        if params[option]:
            args.append(flag)
    for option, flag in (('migrate', '--no-migrate'), ('cleanup', '--no-cleanup'),
                         ('refresh', '--no-refresh'), ('search_deploy', '--no-search-deploy'),
                         ('app_checks', '--no-app-checks'), ('redis', '--no-redis'),
                         ('media_check', '--no-media-check')):
        if not params[option]:
            args.append(flag)
    if params['allow_extensions']:
        args += ['--allow-extensions', ','.join(params['allow_extensions'])]
    for option, flag in (('refresh_days', '--refresh-days'), ('jobs', '--jobs')):
        if params[option]:
            args += [flag, str(params[option])]
    return args


def main():
    module = AnsibleModule(
        argument_spec=source_argument_spec(
            source=dict(type='path', required=True),
            mode=dict(type='str', default='whole', choices=['whole', 'db_only', 'media_only']),
            request_id=dict(type='str'),
            wait=dict(type='bool', default=True),
            target_db=dict(type='str'),
            source_db=dict(type='str'),
            member=dict(type='str'),
            media_dir=dict(type='path'),
            media_tree=dict(type='str'),
            exclude_cache=dict(type='bool', default=False),
            verify_media=dict(type='bool', default=False),
            keep_owners=dict(type='bool', default=False),
            allow_extensions=dict(type='list', elements='str', default=[]),
            drop_previous=dict(type='bool', default=False),
            migrate=dict(type='bool', default=True),
            cleanup=dict(type='bool', default=True),
            refresh=dict(type='bool', default=True),
            search_deploy=dict(type='bool', default=True),
            app_checks=dict(type='bool', default=True),
            redis=dict(type='bool', default=True),
            media_check=dict(type='bool', default=True),
            refetch_missing_remote_media=dict(type='bool', default=False),
            refresh_days=dict(type='int', default=0),
            jobs=dict(type='int', default=0),
            restore_config=dict(type='bool', default=False),
            keep_services_stopped_on_failure=dict(type='bool', default=False),
        ),
        supports_check_mode=True)
    params = module.params
    for option in ('refresh_days', 'jobs'):
        if params[option] < 0:
            module.fail_json(msg='%s must not be negative' % option, rc=2, exit_code_meaning='usage')
    cli = AgentCli(module)
    args = restore_args(params) + ['--', params['source']]
    if module.check_mode:
        plan = cli.call(['restore', '--plan'] + args).get('operation', {})
        module.exit_json(changed=True, operation=plan, plan=plan.get('steps', []))
    changed, operation = cli.start('restore', args, params['request_id'], params['wait'])
    module.exit_json(changed=changed, operation=operation)


if __name__ == '__main__':
    main()
