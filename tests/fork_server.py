"""A warm interpreter for the CLI tests: `python -m src.train ...` as a forked child of a process that has
already imported torch, Lightning and Hydra.

Every real-CLI test pays Python's start-up, 10-20 s on 2 cores (torch, then torchvision, which imports
torch._dynamo, then Lightning). This server pays it once: for each request it forks, and the child runs
the module exactly as `python -m` would (runpy, `__main__`, sys.argv), with the request's working
directory, environment and output files, then exits with the module's exit status. Forking is safe
here because the server has only imported modules: no threads, no CUDA, no open data.

Protocol, one JSON object a line: the client sends {module, args, cwd, env, stdout, stderr}; the server
answers {"pid": ...} when the child starts and {"returncode": ...} when it ends. One child at a time.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import traceback
import warnings


def run_module(request: dict) -> None:
    """In the forked child: become `python -m <module> <args>` and exit with its status."""
    code = 1
    try:
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
            os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        if request["env"].get("PYTHONWARNINGS") == "ignore":
            warnings.simplefilter("ignore")
        if "OMP_NUM_THREADS" in request["env"]:  # read by torch at import: apply it as a fresh run would
            import torch

            torch.set_num_threads(int(request["env"]["OMP_NUM_THREADS"]))
        sys.argv = [request["module"], *request["args"]]
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exit_:
        if exit_.code is None or isinstance(exit_.code, int):
            code = exit_.code or 0
        else:
            print(exit_.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    startup_env = dict(os.environ)
    # The heavy imports, once. The entry points import torch and Lightning only when they need them
    # (src/train.py checks the command line first), so what a run imports is named here; `src` first,
    # as in a real run (src/lightning_ext/lean_imports.py).
    import src

    src.lightning_ext.lean_imports.install()  # done by `import src` already; it keeps `src` first here
    import lightning.pytorch  # noqa: F401
    import torch  # noqa: F401

    import src.data.cifar10  # noqa: F401
    import src.data.flowers17  # noqa: F401
    import src.data.mnist  # noqa: F401
    import src.eval  # noqa: F401
    import src.lightning_ext.checkpoints  # noqa: F401
    import src.lightning_ext.progress  # noqa: F401
    import src.lightning_ext.tensorboard  # noqa: F401
    import src.models.alexnet  # noqa: F401
    import src.models.lenet5  # noqa: F401
    import src.runs.report  # noqa: F401
    import src.train  # noqa: F401
    import src.training.insight  # noqa: F401
    import src.training.module  # noqa: F401

    # What the imports put into the environment (e.g. Lightning's PYTORCH_NVML_BASED_CUDA_CHECK) a fresh
    # interpreter would have too.
    added = {k: v for k, v in os.environ.items() if startup_env.get(k) != v}
    answer = sys.stdout
    print(json.dumps({"ready": True}), file=answer, flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        request["env"] = {**request["env"], **added}
        pid = os.fork()
        if pid == 0:
            run_module(request)
        print(json.dumps({"pid": pid}), file=answer, flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}), file=answer, flush=True)


if __name__ == "__main__":
    serve()
