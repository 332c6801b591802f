from agos.cli import run

run()
