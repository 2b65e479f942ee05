"""`python -m taskmesh_tasks`: serve the tasks API (`--help` lists the options)."""

from taskmesh_common import serving

if __name__ == "__main__":
    serving.main("taskmesh_tasks.main:create_app")
