"""`python -m taskmesh_auth`: serve the auth API (`--help` lists the options)."""

from taskmesh_common import serving

if __name__ == "__main__":
    serving.main("taskmesh_auth.main:create_app")
