"""Property-based tests: random valid inputs never crash the readers, the recodes are total over
the codebook, and estimates and weights keep their bounds."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdpipeline.codebook import FileSpec, default_codebook
from sdpipeline.estimation import ratio_estimate, weighted_mean
from sdpipeline.harmonise import harmonise_wave
from sdpipeline.readers import read_raw_file
from sdpipeline.weighting import rake

LATVIAN = "aābcčdeēfgģhiījkķlļmnņoprsštuūvzžAĀBCČDEĒFGĢHIĪJKĶLĻMNŅOPRSŠTUŪVZŽ "
CODEBOOK = default_codebook()
CATEGORICAL = [
    (variable, source)
    for instrument in CODEBOOK.instruments.values()
    for variable in instrument.variables
    if variable.is_categorical
    for source in variable.sources.values()
]


def recode_categorical(values: pd.Series, variable, source) -> pd.Series:
    """``values`` of ``variable`` in ``source``'s wave, recoded by the warehouse's own SQL."""
    instrument = CODEBOOK.instruments[variable.instrument]
    table = pd.DataFrame(
        {
            source.variable: values.to_numpy(),
            "_source_file": "a",
            "_source_sha256": "b",
            "_source_row": range(len(values)),
        }
    )
    for other in instrument.variables_in(source.wave):  # the rest of the row: empty answers
        if other.sources[source.wave].variable not in table:
            table[other.sources[source.wave].variable] = None
    return harmonise_wave(table, instrument, source.wave, CODEBOOK)[variable.name]


rows = st.lists(
    st.tuples(
        st.integers(0, 99),
        st.integers(-100000, 100000).map(lambda x: x / 10),
        st.text(alphabet=LATVIAN, min_size=1, max_size=20).map(str.strip).filter(bool),
    ),
    min_size=1,
    max_size=30,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=rows, encoding=st.sampled_from(["cp1257", "utf-8", "utf-8-sig"]), declared=st.booleans()
)
def test_csv_as_excel_writes_it_reads_back_unchanged(tmp_path_factory, rows, encoding, declared):
    path = tmp_path_factory.mktemp("csv") / "a.csv"
    lines = ["kods;slodze;vards"] + [f"{c};{str(x).replace('.', ',')};{t}" for c, x, t in rows]
    path.write_bytes("\r\n".join(lines).encode(encoding))
    spec = FileSpec(
        name="a.csv", encoding=encoding if declared else None, delimiter=";", decimal=","
    )
    raw = read_raw_file(path, spec, ["vards"])
    assert raw.frame["kods"].tolist() == [c for c, _, _ in rows]
    assert np.allclose(raw.frame["slodze"].astype(float), [x for _, x, _ in rows])
    assert raw.frame["vards"].tolist() == [t for _, _, t in rows]


def test_every_recode_is_total_over_the_codebook():
    """Every labelled code of every categorical source variable, a wave's variables at once (a
    column each, cycling through its codes), recoded by the warehouse's SQL: none is left
    without a harmonised code, and each lands on its scale or a declared missing code."""
    missing = {m.code for m in CODEBOOK.missing_categories.values()}
    by_wave: dict[tuple[str, str], list] = {}
    for variable, source in CATEGORICAL:
        if source.scale is not None:
            by_wave.setdefault((variable.instrument, source.wave), []).append((variable, source))
    assert by_wave
    for (name, wave), pairs in by_wave.items():
        instrument = CODEBOOK.instruments[name]
        size = max(len(source.scale.labels) for _, source in pairs)
        table = pd.DataFrame(
            {"_source_file": "a", "_source_sha256": "b", "_source_row": range(size)}
        )
        for _, source in pairs:
            codes = [float(c) for c in source.scale.labels]
            table[source.variable] = [codes[i % len(codes)] for i in range(size)]
        for other in instrument.variables_in(wave):  # the rest of the row: empty answers
            if other.sources[wave].variable not in table:
                table[other.sources[wave].variable] = None
        out = harmonise_wave(table, instrument, wave, CODEBOOK)
        for variable, _ in pairs:
            assert out[variable.name].notna().all(), (variable.name, wave)
            assert set(out[variable.name]) <= set(variable.scale.codes) | missing, (
                variable.name,
                wave,
            )


@settings(deadline=None, max_examples=30)  # each example runs the recode SQL in a new DuckDB
@given(
    pick=st.sampled_from([c for c in CATEGORICAL if c[1].scale is not None]),
    draws=st.lists(st.integers(0, 10**6), min_size=1, max_size=50),
)
def test_random_valid_answers_always_recode(pick, draws):
    variable, source = pick
    labels = sorted(source.scale.labels)
    values = pd.Series([float(labels[d % len(labels)]) for d in draws])
    out = recode_categorical(values, variable, source)
    assert out.notna().all()


@settings(deadline=None, max_examples=30)
@given(ages=st.lists(st.one_of(st.integers(18, 110), st.just(999)), min_size=1, max_size=50))
def test_binned_ages_always_fall_in_a_group(ages):
    variable = CODEBOOK.instruments["residents"].variable("age_group")
    source = variable.sources["ex_ante_2017"]
    out = recode_categorical(pd.Series(ages, dtype=float), variable, source)
    assert set(out) <= {1, 2, 3, 4, CODEBOOK.missing_code("no_answer")}


samples = st.integers(2, 60).flatmap(
    lambda n: st.tuples(
        st.lists(st.floats(-1000, 1000, allow_nan=False), min_size=n, max_size=n),
        st.lists(st.floats(0.1, 100), min_size=n, max_size=n),
        st.lists(st.integers(0, 2), min_size=n, max_size=n),
    )
)


@settings(deadline=None)  # the first example imports SciPy, which takes most of a second
@given(sample=samples)
def test_estimates_stay_within_the_data(sample):
    y, w, strata = (np.array(v, dtype=float) for v in sample)
    psu = np.arange(len(y)).astype(str)
    e = weighted_mean(y, w, strata.astype(str), psu)
    assert y.min() - 1e-6 <= e.estimate <= y.max() + 1e-6
    assert e.se >= 0
    if e.df > 0:
        assert e.ci_low <= e.estimate <= e.ci_high
    ratio = ratio_estimate(np.abs(y), np.abs(y) + 1, w, strata.astype(str), psu)
    assert 0 <= ratio.estimate < 1


@settings(deadline=None, max_examples=25)
@given(seed=st.integers(0, 10**6))
def test_raking_reproduces_any_reachable_margins(seed):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": np.tile([1, 2, 3], 20), "b": np.repeat([1, 2], 30)})
    frame = frame.sample(frac=1, random_state=seed).reset_index(drop=True)
    targets = [
        pd.Series(rng.uniform(100, 1000, 3), index=[(1,), (2,), (3,)]),
        pd.Series(rng.uniform(100, 1000, 2), index=[(1,), (2,)]),
    ]
    targets[1] *= targets[0].sum() / targets[1].sum()
    weights, _, _ = rake(frame, pd.Series(1.0, index=frame.index), [("a",), ("b",)], targets)
    for margin, target in zip(("a", "b"), targets, strict=True):
        achieved = weights.groupby(frame[margin]).sum()
        assert np.allclose(achieved.to_numpy(), target.to_numpy(), rtol=1e-6)
    assert (weights > 0).all()
