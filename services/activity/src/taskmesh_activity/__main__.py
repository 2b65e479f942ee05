"""`python -m taskmesh_activity`: serve the activity API (`--help` lists the options)."""

from taskmesh_common import serving

if __name__ == "__main__":
    serving.main("taskmesh_activity.main:create_app")
