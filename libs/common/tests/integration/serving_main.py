"""The serving tests' program, written as each service's ``__main__`` is."""

from taskmesh_common import serving

if __name__ == "__main__":
    serving.main("serving_app:create_app")
