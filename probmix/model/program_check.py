"""``check_program``: say what is wrong with a mixture program before any inference runs.

The generic engines (gradient MAP, SVI, NUTS) need a program that follows the contract
of "Declaring your own model": global latent sites, one discrete assignment site inside
``pyro.plate("data", N)`` marked for parallel enumeration, and the observed site ``"obs"``
in the same plate, whose density broadcasts over the enumerated assignment. A program that
breaks it fails deep inside Pyro's enumeration with a shape error; this module traces the
program once plainly and once with the assignment enumerated, and reports every broken
rule with its fix.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample

from probmix._random import quiet_singular_samples, seeded
from probmix.io.data import as_data

__all__ = ["check_program", "ProgramError", "ProgramReport"]

_CONTRACT = "see 'Declaring your own model' (docs/custom_models.md)"


class ProgramError(ValueError):
    """A mixture program breaks the contract; ``problems`` lists each broken rule with its fix."""

    def __init__(self, name: str, problems: list[str]):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"the program {name} does not follow the mixture-program contract "
                         f"({len(self.problems)} problem(s); {_CONTRACT}):\n{lines}")


@dataclass(frozen=True)
class ProgramReport:
    """What :func:`check_program` found in a valid program.

    Attributes
    ----------
    n_rows : int
        N, the size of the data plate.
    n_components : int
        The number of values of the assignment site (its enumerated support).
    assignment : str
        The name of the enumerated site.
    global_sites : dict of str to tuple
        Each global latent site and the shape of one value.
    """

    n_rows: int
    n_components: int
    assignment: str
    global_sites: dict

    def __str__(self) -> str:
        sites = ", ".join(f"{n} {tuple(s)}" for n, s in self.global_sites.items())
        return (f"valid mixture program: N={self.n_rows} rows, assignment '{self.assignment}' "
                f"with {self.n_components} values, global sites: {sites}")


def _data_frame(site):
    return next((f for f in site["cond_indep_stack"] if f.name == "data"), None)


def _name(program) -> str:
    inner = getattr(program, "func", program)  # functools.partial
    return repr(getattr(inner, "__qualname__", type(inner).__name__))


def check_program(program, x, *, seed: int = 0) -> ProgramReport:
    """Check that ``program(x)`` is a mixture program every generic engine can fit.

    Parameters
    ----------
    program : callable
        A Pyro program ``program(x)``.
    x : array-like (N, D)
        Data (a few rows suffice).
    seed : int
        Seed of the prior draws the check traces the program with.

    Returns
    -------
    ProgramReport

    Raises
    ------
    TypeError
        ``program`` is not callable.
    ProgramError
        (a ValueError) listing every broken rule with its fix: the program raises on ``x``,
        no ``pyro.plate("data", N)`` (or one of the wrong size), no discrete assignment site
        in it or one not marked for enumeration, a local continuous latent site, the observed
        site not named ``"obs"`` or outside the plate, an observation whose batch shape is
        not (N,), densities that do not broadcast over the enumerated assignment, or
        non-finite log densities.
    """
    if not callable(program):
        raise TypeError(f"program must be a callable program(x); got {type(program).__name__}.")
    x = as_data(x)
    n = x.shape[0]
    name = _name(program)
    try:
        with seeded(seed), quiet_singular_samples():
            trace = poutine.trace(program).get_trace(x)
    except Exception as exc:  # the user's code: report it, with the shapes it was given
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        fix = ("Shapes that do not broadcast: inside pyro.plate('data', N) the rightmost batch "
               "dim of every site must be N; declare each row's own dims (the D features) as "
               "event dims with .to_event(1)." if "Shape mismatch inside plate" in message else
               "Fix the program so that it runs on a tensor x of shape (N, D).")
        raise ProgramError(name, [
            f"program(x) raised {type(exc).__name__}: {message} (x: {tuple(x.shape)}, "
            f"{x.dtype}). {fix}"
        ]) from exc
    sites = [s for s in trace.nodes.values() if s["type"] == "sample" and not site_is_subsample(s)]
    problems = []
    in_data = [s for s in sites if _data_frame(s) is not None]
    sizes = {_data_frame(s).size for s in in_data}
    if not in_data:
        problems.append("no site is inside pyro.plate('data', N). Wrap the assignment and the "
                        "observation in `with pyro.plate('data', x.shape[0]):`.")
    elif sizes != {n}:
        problems.append(f"pyro.plate('data') has size {sorted(sizes)}, but x has {n} rows. "
                        f"Use pyro.plate('data', x.shape[0]).")
    latent_local = [s for s in in_data if not s["is_observed"]]
    discrete = [s for s in latent_local if getattr(s["fn"], "has_enumerate_support", False)]
    continuous = [s for s in latent_local if s not in discrete]
    assignment = None
    if in_data and not discrete:
        problems.append("no discrete assignment site inside pyro.plate('data'). Add "
                        "`z = pyro.sample('z', dist.Categorical(weights), "
                        "infer={'enumerate': 'parallel'})` in the plate and index the "
                        "component parameters with it.")
    elif len(discrete) > 1:
        problems.append(f"{len(discrete)} discrete sites inside pyro.plate('data') "
                        f"({', '.join(repr(s['name']) for s in discrete)}); the generic engines "
                        f"sum out one assignment. Combine them into one Categorical site.")
    elif discrete:
        assignment = discrete[0]
        if assignment["infer"].get("enumerate") != "parallel":
            problems.append(f"the assignment site {assignment['name']!r} is not marked for "
                            f"enumeration. Pass infer={{'enumerate': 'parallel'}} to its "
                            f"pyro.sample.")
    for s in continuous:
        problems.append(f"the continuous latent site {s['name']!r} is inside pyro.plate('data'); "
                        f"the generic engines infer global sites and sum out one discrete "
                        f"assignment only. Move it out of the plate (one value for all rows) "
                        f"or observe it.")
    observed = [s for s in sites if s["is_observed"] and not s["infer"].get("_deterministic")]
    obs = trace.nodes.get("obs")
    if obs is None or not obs["is_observed"]:
        others = ", ".join(repr(s["name"]) for s in observed)
        problems.append(
            f"no observed site named 'obs' (observed sites: {others}). Name the observation "
            f"'obs': pyro.sample('obs', ..., obs=x)." if others else
            "no observed site named 'obs'. Observe the data inside the data plate: "
            "pyro.sample('obs', ..., obs=x).")
        obs = None
    elif _data_frame(obs) is None:
        problems.append("the observed site 'obs' is outside pyro.plate('data'). Move it into "
                        "the plate, next to the assignment.")
        obs = None
    if obs is not None and in_data and tuple(obs["fn"].batch_shape) != (n,):
        shape = tuple(obs["fn"].batch_shape)
        fix = (f" The feature dim is a batch dim: declare it an event dim with "
               f".to_event({len(shape) - 1})." if len(shape) > 1 and shape[0] == n else
               " Its density must give one value per row.")
        problems.append(f"the observation 'obs' has batch shape {shape}; expected ({n},), one "
                        f"row per data point.{fix}")
    if problems:
        raise ProgramError(name, problems)
    report = _check_enumerated(program, x, trace, assignment, name)
    return report


def _check_enumerated(program, x, trace, assignment, name) -> ProgramReport:
    """Trace with the assignment enumerated: shapes must broadcast, densities be finite."""
    from probmix.model.program import enumerated_log_joint, global_sites

    with quiet_singular_samples():
        names = global_sites(program, x)
    values = {s: trace.nodes[s]["value"].detach() for s in names}
    k = int(assignment["fn"].enumerate_support(expand=False).numel())
    try:
        with quiet_singular_samples():
            log_joint = enumerated_log_joint(program, values, x)  # (N, K)
    except Exception as exc:
        raise ProgramError(name, [
            f"the program fails when {assignment['name']!r} is enumerated (its values then "
            f"have shape ({k}, 1), one row per component, left of the data dim): "
            f"{type(exc).__name__}: {exc}. Index per-component parameters with the assignment "
            f"(locs[z], not locs[:, z] or a loop), keep each component's own dims on the "
            f"right (event dims, .to_event(1)), and do not reshape z."
        ]) from exc
    problems = []
    if tuple(log_joint.shape) != (x.shape[0], k):
        problems.append(f"log p(x_n, z_n = k) has shape {tuple(log_joint.shape)}; expected "
                        f"({x.shape[0]}, {k}). Give the observation one density per row and "
                        f"component: its batch shape must broadcast to ({k}, {x.shape[0]}).")
    else:
        bad = ~torch.isfinite(torch.logsumexp(log_joint, -1))
        if bool(bad.any()):
            first = int(bad.nonzero()[0])
            problems.append(f"log p(x_n) is not finite for {int(bad.sum())} row(s) (first: "
                            f"{first}) at a prior draw of the global sites. Check that the "
                            f"observation's support holds every row (counts for a Poisson, "
                            f"the box of a uniform), and that the priors are scaled to x.")
    if problems:
        raise ProgramError(name, problems)
    return ProgramReport(n_rows=x.shape[0], n_components=k, assignment=assignment["name"],
                         global_sites={s: tuple(v.shape) for s, v in values.items()})
