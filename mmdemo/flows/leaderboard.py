"""The arena leaderboard: Bradley–Terry strengths from blind votes, with bootstrap intervals.

Each vote becomes pairwise outcomes: the winner beats every other column; a tie or "all
bad" makes every pair a tie, which counts half a win for each side. Bradley–Terry says
P(i beats j) = p_i / (p_i + p_j); the strengths are fitted by Hunter's MM iteration
(Zermelo's: p_i <- W_i / sum_j n_ij / (p_i + p_j)), all bootstrap rounds at once as one
batched array. A small prior, ``prior`` tied games per contender spread evenly over the
others, keeps one-sided records finite (one vote would otherwise give an infinite gap) and
moves a 140-60 record's gap by under a rating point. Ratings are on the chat arenas' Elo-like
scale: 400 * log10(p), shifted so that a board's contenders average 1000; a 100-point gap
means the stronger one is preferred 64% of the time.

Intervals: the votes are resampled with replacement (``rounds`` times, seeded) and refitted;
the 2.5th and 97.5th percentiles of each contender's rating bound its 95% interval. A
contender's rank is 1 + the number of others whose interval lies wholly above its own, so
contenders the votes cannot tell apart share a rank. Resampling a handful of votes says
little (one vote resampled is the same vote: a zero-width interval), so a contender with
fewer than ``MIN_GAMES`` games is provisional: it has no rank, and is listed after the
ranked ones.

Written by hand: no installed library fits Bradley–Terry (choix and scikit-learn are not
installed; scipy, present only for scikit-image, would still need the likelihood written
out), and the iteration is a dozen lines of numpy.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from mmdemo.flows.votes import BAD, TIE

ROUNDS = 1000  # bootstrap resamples
SEED = 0
PRIOR = 1.0  # virtual tied games per contender (see the module docstring)
MIN_GAMES = 10  # games before a contender is ranked
SCALE = 400.0 / np.log(10.0)  # natural-log strength -> Elo-like points
CENTRE = 1000.0
METHOD = (
    "Bradley–Terry fitted by MM iteration; ties and 'all bad' count half a win each; "
    "95% intervals from bootstrap resamples of the votes"
)


def contender_name(column: dict[str, Any], by_version: bool) -> str:
    """The leaderboard's name for a column: the adapter, or ``adapter@<weights hash>``."""
    name = str(column["adapter"])
    if not by_version:
        return name
    version = column.get("version") or {}
    tag = str(version.get("weights_sha256") or version.get("created") or "")[:8]
    return f"{name}@{tag}" if tag else name


def outcomes(vote: dict[str, Any], by_version: bool = False) -> list[tuple[str, str, float]]:
    """The pairwise outcomes of one vote: (i, j, i's score against j: 1, 0.5 or 0)."""
    names = {c["position"]: contender_name(c, by_version) for c in vote["columns"]}
    winner = vote["winner"]
    if winner in (TIE, BAD):
        ordered = list(names.values())
        return [(a, b, 0.5) for k, a in enumerate(ordered) for b in ordered[k + 1 :]]
    return [(names[winner], other, 1.0) for pos, other in names.items() if pos != winner]


def fit(wins: np.ndarray, games: np.ndarray, prior: float = PRIOR) -> np.ndarray:
    """Bradley–Terry ratings (Elo-like points, mean 1000) from ``wins[..., i, j]`` (i's score
    against j, ties as halves) and ``games[..., i, j]`` (games between them, symmetric);
    leading axes are independent fits. With ``prior=0`` the maximum-likelihood fit, which
    exists only when every contender has both won and lost against a connected field."""
    wins, games = np.asarray(wins, dtype=float), np.asarray(games, dtype=float)
    k = wins.shape[-1]
    if k < 2:
        return np.full(wins.shape[:-1], CENTRE)
    if prior > 0:
        off = 1.0 - np.eye(k)
        wins = wins + off * prior / (2 * (k - 1))
        games = games + off * prior / (k - 1)
    total = wins.sum(-1)
    log_p = np.zeros(wins.shape[:-1])
    for _ in range(20_000):
        p = np.exp(log_p)
        pairs = p[..., :, None] + p[..., None, :]
        new = np.log(total) - np.log((games / pairs).sum(-1))
        new -= new.mean(-1, keepdims=True)  # BT fixes only ratios: pin the mean
        done = not np.all(np.isfinite(new)) or np.max(np.abs(new - log_p)) < 1e-10
        log_p = new
        if done:
            break
    return CENTRE + SCALE * log_p


def board_table(
    votes: Sequence[dict[str, Any]],
    by_version: bool = False,
    rounds: int = ROUNDS,
    seed: int = SEED,
    prior: float = PRIOR,
) -> list[dict[str, Any]]:
    """One board's rows, best first (provisional ones last): rating, 95% interval, rank,
    games, wins, ties, losses, all-bad votes."""
    pairs = [(v, *o) for v, vote in enumerate(votes) for o in outcomes(vote, by_version)]
    names = sorted({n for _, a, b, _s in pairs for n in (a, b)})
    index = {n: i for i, n in enumerate(names)}
    k, n_votes = len(names), len(votes)
    # per vote, its contribution to the flattened (k, k) wins and games matrices
    vote_wins = np.zeros((n_votes, k * k))
    vote_games = np.zeros((n_votes, k * k))
    tally: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(("w", "t", "l", "b"), 0))
    for v, a, b, score in pairs:
        i, j = index[a], index[b]
        vote_wins[v, i * k + j] += score
        vote_wins[v, j * k + i] += 1.0 - score
        vote_games[v, [i * k + j, j * k + i]] += 1.0
        for me, mine in ((a, score), (b, 1.0 - score)):
            tally[me]["w" if mine == 1.0 else "l" if mine == 0.0 else "t"] += 1
    for vote in votes:
        if vote["winner"] == BAD:
            for c in vote["columns"]:
                tally[contender_name(c, by_version)]["b"] += 1
    point = fit((vote_wins.sum(0)).reshape(k, k), vote_games.sum(0).reshape(k, k), prior)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n_votes, np.full(n_votes, 1.0 / n_votes), size=rounds)
    boot = fit(
        (counts @ vote_wins).reshape(rounds, k, k),
        (counts @ vote_games).reshape(rounds, k, k),
        prior,
    )
    low, high = np.percentile(boot, [2.5, 97.5], axis=0)
    games = np.array([sum(tally[n][x] for x in "wtl") for n in names])
    ranked = games >= MIN_GAMES
    rows = []
    for i, name in enumerate(names):
        t = tally[name]
        rows.append(
            {
                "adapter": name,
                "rating": round(float(point[i]), 1),
                "low": round(float(low[i]), 1),
                "high": round(float(high[i]), 1),
                # 1 + how many ranked others lie wholly above; None: too few games yet
                "rank": 1 + int(np.sum(ranked & (low > high[i]))) if ranked[i] else None,
                "provisional": not ranked[i],
                "games": int(games[i]),
                "wins": t["w"],
                "ties": t["t"],
                "losses": t["l"],
                "all_bad": t["b"],
            }
        )
    return sorted(
        rows, key=lambda r: (r["provisional"], r["rank"] or 0, -r["rating"], r["adapter"])
    )


def leaderboards(
    votes: Sequence[dict[str, Any]],
    by_version: bool = False,
    rounds: int = ROUNDS,
    seed: int = SEED,
    prior: float = PRIOR,
) -> dict[str, Any]:
    """Every base model's leaderboard from ``votes`` (records of flows.votes)."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for vote in votes:
        groups[vote["board"]].append(vote)
    return {
        "method": METHOD,
        "rounds": rounds,
        "seed": seed,
        "prior_games": prior,
        "min_games": MIN_GAMES,
        "boards": [
            {
                "base_model": board,
                "votes": len(group),
                "rows": board_table(group, by_version, rounds, seed, prior),
            }
            for board, group in sorted(groups.items())
        ],
    }
