"""From a command line to a checked config, before torch or Lightning is imported (tests/test_startup.py
checks that nothing here imports them):

    compose.py  conf/ as Hydra composes it: resolvers, the groups' choices (and renamed ones), composing
    flags.py    Hydra's own flags (--cfg, -m, --info, -sc) by Hydra's parser and rules, in one line
    check.py    validate_command_line: everything that can fail before a run, answered in one line
    schema.py   the rules of the keys every run has (the datasets' own: src/data/catalog.py)
"""
