import math

import pytest

from scheduler import gres
from scheduler.fields import number, text, timestamp, words

NO_VAL = {"set": False, "infinite": False, "number": 0}


@pytest.mark.parametrize("value,expected", [
    (5, 5), (None, None), ({"set": True, "infinite": False, "number": 60}, 60), (NO_VAL, None),
    ({"set": False, "infinite": True, "number": 0}, math.inf), (4294967294, None), (4294967295, math.inf),
    ("12", 12.0), ("x", None), (True, None),
])
def test_number_accepts_every_shape(value, expected):
    assert number(value) == expected


def test_timestamp_treats_zero_and_unset_as_not_yet():
    assert timestamp(0) is None
    assert timestamp(NO_VAL) is None
    assert timestamp({"set": True, "infinite": False, "number": 1700000000}) == 1700000000.0


@pytest.mark.parametrize("value,expected", [
    ("RUNNING", ("RUNNING",)), (["IDLE", "DRAIN"], ("IDLE", "DRAIN")), ("mixed+drain", ("MIXED", "DRAIN")),
    (None, ()), ([], ()),
])
def test_words(value, expected):
    assert words(value) == expected


def test_text_null():
    assert text(None) == "" and text("(null)") == "" and text(["a", "b"]) == "a,b"


@pytest.mark.parametrize("value,count,indices", [
    ("gpu:2", 2, None),
    ("gpu:h100:8(S:0-1)", 8, None),
    ("gpu:1(IDX:0)", 1, (0,)),
    ("gpu:h100:4(IDX:0-3)", 4, (0, 1, 2, 3)),
    ("gpu:h100:3(IDX:0-1,3)", 3, (0, 1, 3)),
    ("gpu:0(IDX:N/A)", 0, None),
    ("gres:gpu:1", 1, None),
    ("gres/gpu:h100:8", 8, None),
    ("gpu:l40s:1(IDX:0),tmpsize:10737418240", 1, (0,)),
    ("gpu:a100:1(IDX:0),gpu:v100:2(IDX:1-2)", 3, (0, 1, 2)),
    ("", 0, None), (None, 0, None), ("(null)", 0, None),
])
def test_gres(value, count, indices):
    assert gres.gpu_count(value) == count
    assert gres.gpu_indices(value) == indices


@pytest.mark.parametrize("value,expected", [
    ("cpu=2,mem=4G,node=1,billing=2,gres/gpu=1,gres/gpu:l40s=1", 1),
    ("cpu=2,gres/gpu:a100=2,gres/gpu:v100=1", 3),
    ("cpu=1,node=1,billing=1", None),
    ("", None),
])
def test_tres_gpus(value, expected):
    assert gres.tres_gpus(value) == expected
