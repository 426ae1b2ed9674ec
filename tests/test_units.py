"""offload_spawner.pipeline.units: memory sizes as KubeSpawner's ByteSpecification reads them,
and numbers that may arrive as form strings."""

import math

import pytest

from offload_spawner.pipeline.units import (
    QuantityError,
    format_cores,
    format_memory,
    parse_count,
    parse_memory,
    parse_number,
)

KI, MI, GI, TI = 2**10, 2**20, 2**30, 2**40


@pytest.mark.parametrize(
    "text, size",
    [
        ("512K", 512 * KI),
        ("512M", 512 * MI),
        ("8G", 8 * GI),
        ("32G", 32 * GI),
        ("2T", 2 * TI),
        ("1.5T", int(1.5 * TI)),
        ("0.5G", 512 * MI),
        ("1024", 1024),  # a bare number is bytes, as in ByteSpecification
        (" 8G ", 8 * GI),
    ],
)
def test_memory_units_are_powers_of_1024(text, size):
    assert parse_memory(text) == size


@pytest.mark.parametrize("plain, binary", [("8K", "8Ki"), ("8M", "8Mi"), ("8G", "8Gi"), ("8T", "8Ti")])
def test_binary_suffixes_are_synonyms(plain, binary):
    assert parse_memory(binary) == parse_memory(plain)


def test_memory_agrees_with_kubespawner_byte_specification():
    # KubeSpawner's mem_limit/mem_guarantee are jupyterhub.traitlets.ByteSpecification.
    from jupyterhub.traitlets import ByteSpecification
    from traitlets import HasTraits

    class Holder(HasTraits):
        size = ByteSpecification(0)

    for text in ("512K", "512M", "8G", "2T", "1.5G"):
        holder = Holder()
        holder.size = text
        assert parse_memory(text) == holder.size, text


def test_integers_and_floats_are_bytes():
    assert parse_memory(8 * GI) == 8 * GI
    assert parse_memory(1024.0) == 1024


@pytest.mark.parametrize(
    "bad",
    ["180GB", "8g", "8 GB", "8Gb", "8i", "8P", "G", "", "eight", "-8G", "8G8", "1e3G", "0G", "0", "0.0001K"],
)
def test_bad_memory_strings_are_refused(bad):
    with pytest.raises(QuantityError):
        parse_memory(bad)


def test_bad_unit_message_says_what_to_write():
    with pytest.raises(QuantityError) as info:
        parse_memory("180GB")
    message = str(info.value)
    assert "'180GB'" in message
    assert "K, M, G or T" in message


@pytest.mark.parametrize("bad", [True, False, None, [8], {"G": 8}, 0, -1, 0.0, -2.5, math.inf, math.nan])
def test_non_sizes_are_refused(bad):
    with pytest.raises(QuantityError):
        parse_memory(bad)


@pytest.mark.parametrize(
    "size, text",
    [
        (32 * GI, "32G"),
        (512 * MI, "512M"),
        (2 * TI, "2T"),
        (4 * KI, "4K"),
        (int(1.5 * GI), "1.5G"),
        (1536 * GI, "1.5T"),
        (1000, "1000"),
    ],
)
def test_format_memory(size, text):
    assert format_memory(size) == text


@pytest.mark.parametrize("size", [KI, 3 * MI, int(1.5 * GI), 1280 * MI, 480 * GI, 7 * TI, 123456789])
def test_format_then_parse_round_trips(size):
    assert parse_memory(format_memory(size)) == size


@pytest.mark.parametrize("value, number", [("4", 4.0), ("4.0", 4.0), (" 2.5 ", 2.5), (4, 4.0), (0.5, 0.5)])
def test_numbers_may_arrive_as_strings(value, number):
    assert parse_number(value, "Cores") == number


@pytest.mark.parametrize(
    "bad", [True, False, None, [4], {"n": 4}, "four", "-4", "4 cores", "1e3", "", "inf", math.inf, math.nan]
)
def test_non_numbers_are_refused_naming_the_field(bad):
    with pytest.raises(QuantityError) as info:
        parse_number(bad, "Cores")
    assert "Cores" in str(info.value)


def test_long_user_text_is_cut_short_in_messages():
    with pytest.raises(QuantityError) as info:
        parse_number("x" * 500, "Cores")
    assert len(str(info.value)) < 100
    assert "..." in str(info.value)


@pytest.mark.parametrize("value, count", [("2", 2), (3, 3), ("0", 0), ("2.0", 2), (1.0, 1)])
def test_parse_count(value, count):
    assert parse_count(value, "accelerator_count") == count
    assert isinstance(parse_count(value, "accelerator_count"), int)


@pytest.mark.parametrize("bad", ["1.5", 0.5, "-1", True, "two"])
def test_parse_count_refuses_fractions_and_non_numbers(bad):
    with pytest.raises(QuantityError) as info:
        parse_count(bad, "accelerator_count")
    assert "accelerator_count" in str(info.value)


def test_format_cores():
    assert format_cores(1) == "1 core"
    assert format_cores(1.0) == "1 core"
    assert format_cores(8.0) == "8 cores"
    assert format_cores(0.5) == "0.5 cores"
