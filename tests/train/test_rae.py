"""RAE arithmetic against sequences computed by hand."""

import pytest

from spiral_train.rae import RAE, RoleReturn, assign_advantages, state_baselines


def returns(*items):
    return [RoleReturn(env_id, role, reward) for env_id, role, reward in items]


def test_ema_baseline_is_read_before_it_is_updated():
    rae = RAE("ema", decay=0.95)
    batch = returns(("K", "player_0", 1.0), ("K", "player_0", 1.0), ("K", "player_0", -1.0))
    rae.assign(batch)
    # b0 = 0 -> A = 1, b = 0.05; A = 1 - 0.05 = 0.95, b = 0.95*0.05 + 0.05 = 0.0975; A = -1 - 0.0975
    assert [r.advantage for r in batch] == pytest.approx([1.0, 0.95, -1.0975])
    assert rae.baselines[("K", "player_0", "self")] == pytest.approx(0.95 * 0.0975 - 0.05)


def test_baselines_are_separate_per_game_and_role():
    rae = RAE("ema", decay=0.5)
    batch = returns(("K", "player_0", 1.0), ("K", "player_1", -1.0), ("T", "player_0", 0.0), ("K", "player_0", 1.0))
    rae.assign(batch)
    assert [r.advantage for r in batch] == pytest.approx([1.0, -1.0, 0.0, 0.5])
    expected = {("K", "player_0", "self"): 0.75, ("K", "player_1", "self"): -0.5, ("T", "player_0", "self"): 0.0}
    assert rae.baselines == pytest.approx(expected)


def test_a_role_that_always_loses_gets_zero_advantage_in_the_limit():
    """The reason for RAE: a structurally losing role is not pushed down for losing."""
    rae = RAE("ema", decay=0.95)
    for _ in range(400):
        batch = returns(("K", "player_1", -1.0))
        rae.assign(batch)
    assert batch[0].advantage == pytest.approx(0.0, abs=1e-6)


def test_none_is_plain_reinforce():
    rae = RAE("none")
    batch = returns(("K", "player_0", 1.0), ("K", "player_1", -1.0))
    rae.assign(batch)
    assert [r.advantage for r in batch] == [1.0, -1.0]
    assert rae.baselines == {}


def test_batch_mode_normalises_per_game_and_role():
    rae = RAE("batch")
    batch = returns(("K", "player_0", 1.0), ("K", "player_0", -1.0), ("K", "player_0", 1.0), ("K", "player_1", 0.5))
    rae.assign(batch)
    mean, std = 1 / 3, (8 / 9) ** 0.5
    expected = [(1 - mean) / std, (-1 - mean) / std, (1 - mean) / std, 0.0]
    assert [r.advantage for r in batch] == pytest.approx(expected, rel=1e-5)


def test_state_round_trip():
    rae = RAE("ema")
    rae.assign(returns(("K", "player_0", 1.0), ("T", "player_1", -1.0)))
    other = RAE("ema")
    other.load_state_dict(rae.state_dict())
    assert other.baselines == rae.baselines


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError, match="ema"):
        RAE("bogus").assign(returns(("K", "player_0", 1.0)))


def test_invalid_answers_never_move_the_baseline_and_stay_pushed_down():
    """A role that keeps answering invalidly keeps getting penalty - b with b the return of games played to
    their end; had its forfeits entered the EMA, the penalty's advantage would sink towards 0."""
    rae = RAE("ema", decay=0.95)
    for _ in range(400):
        batch = [
            RoleReturn("K", "player_0", 0.5),
            RoleReturn("K", "player_0", -1.0, ended_by="self"),
            RoleReturn("K", "player_1", 1.0, ended_by="opponent"),
        ]
        rae.assign(batch)
    baseline = rae.baselines[("K", "player_0", "self")]
    assert baseline == pytest.approx(0.5, abs=1e-6)
    assert batch[1].advantage == pytest.approx(-1.5, abs=1e-6)
    assert batch[2].advantage == 0.0  # a win the opponent's invalid answer handed over earns nothing
    assert rae.baselines[("K", "player_1", "self")] == 0.0  # only unearned wins so far: still its start


@pytest.mark.parametrize("mode", ["none", "batch"])
def test_every_mode_gives_an_unearned_win_no_credit(mode):
    rae = RAE(mode)
    batch = [
        RoleReturn("K", "player_0", 1.0),
        RoleReturn("K", "player_0", -1.0),
        RoleReturn("K", "player_0", -1.0, ended_by="self"),
        RoleReturn("K", "player_1", 1.0, ended_by="opponent"),
    ]
    rae.assign(batch)
    assert batch[3].advantage == 0.0
    assert batch[2].advantage < 0
    if mode == "batch":  # the mean is that of the games played to the end (0 here), the scale that of all
        assert rae.baselines[("K", "player_0", "self")] == 0.0


def test_state_baseline_is_the_mean_of_the_other_played_turns_at_that_state():
    keys = ["J facing a bet"] * 3 + ["K facing a bet", "Q first"]
    rewards = [-1.0, -2.0, -2.0, 2.0, 1.0]
    played = [True, True, False, True, True]  # the third game was ended by an invalid answer
    got = state_baselines(keys, rewards, played)
    assert got[0] == -2.0  # only the other played turn: the forfeit says nothing about play
    assert got[1] == -1.0
    assert got[2] == -1.5  # the forfeit itself is measured against both played turns
    assert got[3] is None and got[4] is None  # no other turn there: the caller keeps the role baseline


def test_state_baseline_makes_the_answers_at_a_losing_state_sum_to_zero():
    """Folding (-1) and calling (-2) with a J are both below any role baseline; against each other they are not."""
    rewards = [-1.0, -2.0] * 8
    baselines = state_baselines(["J facing a bet"] * 16, rewards, [True] * 16)
    advantages = [r - b for r, b in zip(rewards, baselines)]
    assert abs(sum(advantages)) < 1e-9
    assert all(a > 0 for a in advantages[0::2]) and all(a < 0 for a in advantages[1::2])


@pytest.mark.parametrize("offender", ["player_0", "player_1"])
def test_the_offender_named_by_the_env_takes_the_advantage_even_with_penalty_zero(offender):
    """With a penalty of 0 both returns are 0.0: only the env's outcome can say who ended the game. (`make`
    refuses a penalty above the game's worst legal result, so the game is played with the default one and its
    returns are the zero penalty's, 0.0 each.) The offender's turn is measured against its baseline (0 - b < 0);
    the other role's win is unearned (0)."""
    import spiral_envs
    from spiral_envs.play import Outcome
    from spiral_train.rollout.records import LEARNER, GameResult, Match, Turn

    env = spiral_envs.make("KuhnPoker-v1")
    env.reset(seed=3)
    match = Match("KuhnPoker-v1", 3, {"player_0": LEARNER, "player_1": LEARNER})
    result = GameResult(match, returns={"player_0": 0.0, "player_1": 0.0})
    for agent in env.agent_iter():
        _, _, termination, truncation, info = env.last()
        if termination or truncation:
            env.step(None)
            continue
        answer = "no move at all" if agent == offender else info["legal_actions"][0]
        env.step(answer)
        result.turns.append(Turn(match.env_id, agent, 0, [1], [2], [-0.1], answer != "no move at all", False))
    result.outcome = Outcome.from_env(env, dict(env.outcome), result.returns)
    assert result.returns == {"player_0": 0.0, "player_1": 0.0} and result.outcome.offender == offender

    rae = RAE("ema")
    rae.baselines = {("KuhnPoker-v1", role, "self"): 0.5 for role in ("player_0", "player_1")}
    turns = assign_advantages([result], rae)
    by_role = {}
    for turn in turns:
        by_role.setdefault(turn.role, []).append(turn.advantage)
    assert by_role[offender] == [-0.5]
    assert all(a == 0.0 for role, advantages in by_role.items() if role != offender for a in advantages)
