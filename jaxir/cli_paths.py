"""The paths a command reads and writes: where a BEIR dataset name is read from, and the check
that no output clobbers an input (`refuse_clobber`), shared by `jaxir.cli` and `jaxir.cli_train`.
"""
from __future__ import annotations

import os
from pathlib import Path


def beir_folder(data: str) -> Path:
    """The folder `load_beir(data)` reads: `data` itself, or where a dataset name is downloaded."""
    from jaxir.eval.beir import DEFAULT_CACHE_DIR

    path = Path(data).expanduser()
    return path if os.path.lexists(path) else Path(DEFAULT_CACHE_DIR).expanduser() / str(data)


def _real_paths(given: Path) -> list[Path]:
    """`given` resolved, and for a folder also where its (and its subfolders') entries that are
    symbolic links lead (a BEIR folder of links to shared files is still those files)."""
    real = [Path(os.path.realpath(given))]
    folders = [given] if given.is_dir() else []
    for depth in range(2):
        found = []
        for folder in folders:
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for e in entries:
                if e.is_symlink():
                    real.append(Path(os.path.realpath(e.path)))
                elif depth == 0 and e.is_dir(follow_symlinks=False):
                    found.append(Path(e.path))
        folders = found
    return real


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)  # a hard link to an input is that input
    except OSError:
        return False


def refuse_clobber(command: str, outputs: dict, inputs: dict, *, whole: bool = False) -> None:
    """Outputs never clobber inputs: an output path (option -> path; None: not given) that is,
    or lies inside, one of the command's inputs (option -> path or list of paths) is refused with
    an OptionError naming both, before any data is read. Paths are compared resolved (symbolic
    links, `..`, hard links and a folder's linked entries seen through). `whole`: the outputs are
    folders replaced as a whole, so an input inside one is refused too. Once every output has
    passed, the missing parent folders of each are created (`--run out/new/r.trec` just works)."""
    from jaxir.errors import OptionError

    seen = []
    for option, value in inputs.items():
        for given in ([] if value is None else value if isinstance(value, list) else [value]):
            seen += [(option, given, real) for real in _real_paths(Path(given).expanduser())]
    for out_option, out_given in outputs.items():
        if out_given is None:
            continue
        out = Path(os.path.realpath(Path(out_given).expanduser()))
        for option, given, real in seen:
            how = ("is" if out == real or _same_file(out, real) else "lies inside" if out.is_relative_to(real)
                   else "holds" if whole and real.is_relative_to(out) else None)
            if how:
                raise OptionError(f"{out_option} {out_given} {how} {option} {given} (an input of jaxir "
                                  f"{command}; it would be overwritten): write the output elsewhere")
    for out_option, out_given in outputs.items():  # only after every check above passed
        if out_given is not None:
            parent = Path(out_given).expanduser().parent
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise OptionError(f"{out_option} {out_given}: cannot create its folder {parent} "
                                  f"({e.strerror or e})") from None
