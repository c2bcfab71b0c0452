"""The sparse_mlp search space: contract, feasible out-degrees, the density guideline, the
density-dependent L2 default, kernel features, and clear refusals."""

from __future__ import annotations

import math
import random

import optuna
import pytest
from dnc_sparse import SparseMLP, SparseMLPSpace, feasible_out_degrees
from dnc_sparse.settings import JunctionSparsity, SparseMLPArch, SparseMLPCore

from dnc.plugins import DataSpec, DefaultSuggest, TrainingBounds, UserError
from dnc.suggest import TrialSuggest, UniformSuggest
from dnc.testing import SearchSpaceContract

DIGITS = DataSpec(input_shape=(1, 8, 8), num_classes=10)
SIZES = SparseMLPCore(input_size=64, num_classes=10)


class TestSparseMLPSpaceContract(SearchSpaceContract):
    data_spec = DIGITS

    def make_space(self) -> SparseMLPSpace:
        return SparseMLPSpace()


class TestSparseMLPSpaceWithSizesContract(SearchSpaceContract):
    data_spec = DIGITS

    def make_space(self) -> SparseMLPSpace:
        return SparseMLPSpace(
            core=SIZES, sparsity={"nondecreasing": True, "patterns": ("clash_free", "basic")}
        )


def _samples(space: SparseMLPSpace, n: int, seed: int = 0, **kwargs):
    rng = random.Random(seed)
    return [space.sample(UniformSuggest(rng.random, **kwargs)) for _ in range(n)]


def test_out_degrees_are_feasible_and_nearest_to_the_density():
    space = SparseMLPSpace(core=SIZES)
    for cand in _samples(space, 40):
        model = space.build(cand, DIGITS)
        assert isinstance(model, SparseMLP)
        sizes = [64, *space.widths(cand), 10]
        assert list(model.layers) == sizes
        for j, d in enumerate(model.d_out):
            assert cand[f"d_out_{j}"] == d  # the candidate carries what the model uses
            options = feasible_out_degrees(sizes[j], sizes[j + 1])
            assert d in options
            gap = abs(math.log(d / sizes[j + 1]) - math.log(cand[f"density_{j}"]))
            assert all(
                gap <= abs(math.log(o / sizes[j + 1]) - math.log(cand[f"density_{j}"])) + 1e-12
                for o in options
            )


def test_without_sizes_the_network_realises_the_same_out_degrees():
    known = SparseMLPSpace(core=SIZES)
    unknown = SparseMLPSpace()
    for cand in _samples(known, 20, seed=4):
        bare = {k: v for k, v in cand.items() if not k.startswith("d_out_")}
        assert unknown.build(bare, DIGITS).d_out == known.build(cand, DIGITS).d_out


def test_nondecreasing_densities_toward_the_output():
    two = {"input_size": 64, "num_classes": 10, "hidden_layers": (2, 2)}
    space = SparseMLPSpace(core=two, sparsity={"nondecreasing": True})
    free = SparseMLPSpace(core=two)
    decreasing_seen = False
    for guided, unguided in zip(_samples(space, 60), _samples(free, 60), strict=True):
        sizes = [64, *space.widths(guided), 10]
        realised = [guided[f"d_out_{j}"] / sizes[j + 1] for j in range(3)]
        assert realised == sorted(realised)
        assert [guided[f"density_{j}"] for j in range(3)] == sorted(
            guided[f"density_{j}"] for j in range(3)
        )
        sizes = [64, *free.widths(unguided), 10]
        free_realised = [unguided[f"d_out_{j}"] / sizes[j + 1] for j in range(3)]
        decreasing_seen |= free_realised != sorted(free_realised)
    assert decreasing_seen  # the option is what makes the difference


def test_weight_decay_default_shrinks_with_density():
    # DESIGN §7 (MNIST): 1.1e-4 dense, 5.5e-5 at 40%, 0 at 11%
    assert SparseMLPSpace.default_l2(1.0, 1.1e-4) == pytest.approx(1.1e-4)
    assert SparseMLPSpace.default_l2(0.4, 1.1e-4) == pytest.approx(5.5e-5)
    assert SparseMLPSpace.default_l2(0.11, 1.1e-4) == 0.0
    assert SparseMLPSpace.default_l2(0.05, 1.1e-4) == 0.0
    space = SparseMLPSpace(core=SIZES)
    assert space.sample(DefaultSuggest())["weight_decay"] == pytest.approx(1.1e-4)
    # with the train group held, the default follows each candidate's realised density
    rng = random.Random(2)
    seen = []
    for _ in range(40):
        cand = space.sample(UniformSuggest(rng.random, active=("core", "arch")))
        model = space.build(cand, DIGITS)
        expected = SparseMLPSpace.default_l2(model.density, 1.1e-4)
        assert cand["weight_decay"] == pytest.approx(expected if expected >= 1e-5 else 0.0)
        seen.append(cand["weight_decay"])
    assert min(seen) == 0.0 and max(seen) > 5e-5


def test_kernel_features_encode_every_candidate():
    space = SparseMLPSpace(core=SIZES)
    features = space.kernel_features()
    read = {name for f in features for name in f.reads()}
    for cand in _samples(space, 20):
        for name in cand:
            if not name.startswith("d_out_"):
                assert name in read, f"{name} is searched but no kernel feature reads it"
        for f in features:
            row = f.encode(cand)
            assert len(row) == f.width and all(math.isfinite(v) for v in row)


def test_define_by_run_through_optuna_with_dynamic_bounds(tmp_path):
    space = SparseMLPSpace(core=SIZES, sparsity=JunctionSparsity(nondecreasing=True))
    study = optuna.create_study(
        storage=f"sqlite:///{tmp_path}/s.db",
        sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=5),
    )
    for _ in range(12):
        trial = study.ask()
        cand = space.sample(TrialSuggest(trial))
        study.tell(trial, float(cand["density_0"]))
    assert len(study.trials) == 12


def test_input_size_that_disagrees_with_the_data_is_refused():
    space = SparseMLPSpace(core={"input_size": 784, "num_classes": 10})
    cand = space.sample(DefaultSuggest())
    with pytest.raises(UserError, match=r"core\.input_size=784 but the data has 64"):
        space.build(cand, DIGITS)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"core": {"widths": []}}, r"core\.widths is empty"),
        ({"core": {"widths": [32, 32]}}, r"core\.widths=\[32, 32\]: give distinct"),
        ({"core": {"default_hidden_nodes": 100}}, r"core\.default_hidden_nodes=100"),
        ({"core": {"input_size": 0}}, r"core\.input_size=0"),
        ({"core": {"hidden_layers": [2, 1]}}, r"search_space\.core\.hidden_layers=\[2, 1\]"),
        ({"sparsity": {"density": [0.5, 0.1]}}, r"sparsity\.density=\[0.5, 0.1\]"),
        ({"sparsity": {"density": [0.0, 1.0]}}, "0 < low"),
        ({"sparsity": {"default_density": 0.01}}, r"sparsity\.default_density"),
        ({"sparsity": {"patterns": ["diagonal"]}}, r"sparsity\.patterns: .*'diagonal'"),
        ({"sparsity": {"pattern": "random", "patterns": ["basic"]}}, r"sparsity\.pattern='random'"),
        ({"sparsity": {"clash_free_type": 5}}, r"sparsity\.clash_free_type=5"),
        ({"sparsity": {"target_c": 0}}, r"sparsity\.target_c=0"),
        ({"sparsity": {"path": "gpu"}}, r"sparsity\.path='gpu'"),
        ({"sparsity": {"nondecreasing": "yes"}}, r"sparsity\.nondecreasing='yes'"),
        ({"sparsity": {"l2_by_density": [[0.5, 1.0], [0.1, 0.0]]}}, r"sparsity\.l2_by_density"),
        ({"sparsity": {"l2_by_density": [[0.5, 1.0, 2.0]]}}, r"sparsity\.l2_by_density"),
        ({"sparsity": {"l2_by_density": [[]]}}, r"sparsity\.l2_by_density"),
        ({"arch": {"activations": ["relu", "nope"]}}, r"arch\.activations: .*'nope'"),
        ({"arch": {"dropouts": [0.0, 1.0]}}, r"arch\.dropout\(s\)"),
    ],
)
def test_bad_settings_are_refused_in_one_line(kwargs, needle):
    with pytest.raises(UserError, match=needle) as info:
        SparseMLPSpace(**kwargs)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("group", "key"),
    [
        ("core", "hidden_nodes"),
        ("sparsity", "densities"),
        ("arch", "activaton"),
        ("training", "lr_range"),
    ],
)
def test_an_unknown_key_in_a_group_names_it_and_the_valid_ones(group, key):
    with pytest.raises(UserError, match=rf"search_space\.{group}\.{key}: unknown key") as info:
        SparseMLPSpace(**{group: {key: 1}})
    valid = {
        "core": "hidden_layers, widths, default_hidden_layers",
        "sparsity": "density, default_density, nondecreasing, patterns",
        "arch": "activation, activations, dropout, dropouts",
        "training": "lr, weight_decay",
    }[group]
    assert f"valid keys: {valid}" in str(info.value)


def test_a_nested_mapping_and_dataclass_instances_give_the_same_space():
    from_config = SparseMLPSpace(
        core={
            "hidden_layers": [1, 2],
            "widths": [64, 128],
            "default_hidden_nodes": 64,
            "input_size": 64,
            "num_classes": 10,
        },
        sparsity={
            "density": [0.1, 1],
            "default_density": 0.5,
            "nondecreasing": True,
            "patterns": ["basic", "random"],
            "pattern": "basic",
            "l2_by_density": [[0.1, 0.0], [1, 1]],
        },
        arch={"activations": ["relu", "elu"], "dropout": 0, "dropouts": [0, 0.5]},
    )
    from_objects = SparseMLPSpace(
        core=SparseMLPCore(
            hidden_layers=(1, 2),
            widths=(64, 128),
            default_hidden_nodes=64,
            input_size=64,
            num_classes=10,
        ),
        sparsity=JunctionSparsity(
            density=(0.1, 1.0),
            default_density=0.5,
            nondecreasing=True,
            patterns=("basic", "random"),
            pattern="basic",
            l2_by_density=((0.1, 0.0), (1.0, 1.0)),
        ),
        arch=SparseMLPArch(activations=("relu", "elu"), dropout=0.0, dropouts=(0.0, 0.5)),
    )
    for group in ("core", "sparsity", "arch", "training"):
        assert getattr(from_config, group) == getattr(from_objects, group), group
    assert from_config.reference_candidate() == from_objects.reference_candidate()
    assert _samples(from_config, 5) == _samples(from_objects, 5)
    # MLPSpace's flat attributes follow the groups (its grids and checks read them)
    assert from_config.hidden_nodes == (64, 128) and from_config.dropouts == (0.0, 0.5)
    # no training group: the dense weight decay default of DESIGN §7; a given one is kept
    assert from_config.training == TrainingBounds(default_weight_decay=1.1e-4)
    assert SparseMLPSpace(training={}).training == TrainingBounds()


def test_grid_offers_the_patterns():
    space = SparseMLPSpace()
    base = space.reference_candidate()
    assert [c["pattern"] for c in space.grid("pattern", base)] == list(space.sparsity.patterns)
    assert "pattern" in space.grid_substages()
