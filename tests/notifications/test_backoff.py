import pytest

from notifications.attempts import retry_countdown


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [(1, 2), (2, 4), (3, 8), (4, 16), (5, 30), (9, 30), (500, 30)],
)
def test_the_delay_is_a_whole_number_of_seconds_under_the_doubling_capped_ceiling(attempt, ceiling):
    delays = [retry_countdown(attempt=attempt, base_seconds=2, max_seconds=30) for _ in range(300)]

    assert all(isinstance(delay, int) and 0 <= delay <= ceiling for delay in delays)


def test_full_jitter_spreads_the_delays_over_the_whole_range():
    # given many deliveries failing at their fifth attempt at once
    delays = [retry_countdown(attempt=5, base_seconds=2, max_seconds=600) for _ in range(2000)]

    # then their retries are spread between 0 and 32 seconds, not bunched at the ceiling
    assert min(delays) <= 2
    assert max(delays) >= 30
    assert len(set(delays)) > 20


def test_a_fractional_base_is_rounded_up_to_whole_seconds():
    # RabbitMQ's native delayed delivery counts whole seconds
    delays = {retry_countdown(attempt=1, base_seconds=0.2, max_seconds=600) for _ in range(200)}

    assert delays <= {0, 1}
    assert 1 in delays


def test_a_zero_base_means_no_delay():
    assert retry_countdown(attempt=3, base_seconds=0, max_seconds=600) == 0


def test_attempts_are_counted_from_one():
    with pytest.raises(ValueError):
        retry_countdown(attempt=0, base_seconds=2, max_seconds=600)
