# -*- coding: utf-8 -*-
# Copyright: mastodon-restore contributors
# License: the project's (packaging/debian/copyright; not chosen yet)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    """The options of the modules that open a backup: its secrets."""

    DOCUMENTATION = r'''
options:
  password_file:
    description:
      - File holding the archive password or OpenPGP passphrase (read by the agent).
    type: path
  age_identity:
    description:
      - age identity file for C(.age) sources.
    type: path
  gpg_key:
    description:
      - OpenPGP secret key file for C(.gpg) sources.
    type: path
'''
