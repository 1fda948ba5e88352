import pytest

from scheduler.hostlist import HostlistError, compress, expand

EXPANSIONS = [
    ("gpu-[001-004,007]", ["gpu-001", "gpu-002", "gpu-003", "gpu-004", "gpu-007"]),
    ("localhost", ["localhost"]),
    ("a,b[1-2]", ["a", "b1", "b2"]),
    ("n[8-10]", ["n8", "n9", "n10"]),
    ("n[08-10]", ["n08", "n09", "n10"]),
    ("r[1-2]n[1-2]", ["r1n1", "r1n2", "r2n1", "r2n2"]),
    ("gpu-[001-002],cpu-[1,3]", ["gpu-001", "gpu-002", "cpu-1", "cpu-3"]),
    ("", []),
    (None, []),
    ("(null)", []),
]


@pytest.mark.parametrize("expression,names", EXPANSIONS)
def test_expand(expression, names):
    assert expand(expression) == names


@pytest.mark.parametrize("bad", ["gpu-[1-", "gpu-]1", "gpu-[a-b]", "gpu-[5-1]", "gpu-[1-99999999]"])
def test_expand_refuses_malformed_and_huge(bad):
    with pytest.raises(HostlistError):
        expand(bad)


COMPRESSIONS = [
    (["gpu-001", "gpu-002", "gpu-003", "gpu-007"], "gpu-[001-003,007]"),
    (["n9", "n10", "n1"], "n[1,9-10]"),
    (["gpu-099", "gpu-100", "gpu-101"], "gpu-[099-101]"),
    (["gpu-009", "gpu-10"], "gpu-009,gpu-10"),
    (["login", "gpu-1", "login"], "login,gpu-1"),
    (["r1n01", "r1n02", "r2n01"], "r1n[01-02],r2n01"),
]


@pytest.mark.parametrize("names,expression", COMPRESSIONS)
def test_compress(names, expression):
    assert compress(names) == expression


@pytest.mark.parametrize("expression", ["gpu-[001-140]", "a[1-3],b,c[07-12,15]", "n[1-5,10-20]", "x9,x10,x011"])
def test_round_trip(expression):
    names = expand(expression)
    assert sorted(expand(compress(names))) == sorted(names)
