"""The command line (`python -m cvae`): the parser and its error guard (`main`), and what each command does
(`commands`). The top layer: it may import every other."""
