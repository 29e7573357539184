"""Synthetic interaction data with known answers, for testing models and metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from penchant.data import Dataset


def planted_blocks(
    n_users: int = 60,
    n_items: int = 40,
    blocks: int = 2,
    density: float = 0.5,
    rng: int = 0,
) -> Dataset:
    """Users and items in `blocks` groups; users take only items of their own group.

    User u and item i belong to group `u % blocks` and `i % blocks`. Each user takes each
    item of their group with probability `density` (at least two of them), so for any model
    that learns co-consumption, a user's best unseen items are the rest of their group. Item
    popularity is made to favour group 0 overall, so that a popularity ranking gets the
    other groups wrong. Ids are `u<code>` and `i<code>`; times increase with the pair index.
    """
    gen = np.random.default_rng(rng)
    users: list[int] = []
    items: list[int] = []
    for u in range(n_users):
        group = u % blocks
        own = np.arange(group, n_items, blocks)
        # group 0 users are more numerous in effect: they take more items
        p = min(1.0, density * (1.5 if group == 0 else 1.0))
        taken = own[gen.random(len(own)) < p]
        if len(taken) < 2:
            taken = own[:2]
        users.extend([u] * len(taken))
        items.extend(taken.tolist())
    n = len(users)
    return Dataset.from_arrays(
        user_ids=[f"u{u}" for u in range(n_users)],
        item_ids=[f"i{i}" for i in range(n_items)],
        users=np.asarray(users),
        items=np.asarray(items),
        first_ts=np.arange(n, dtype=np.int64) * 1_000_000,
    )


def drifting_tastes(
    n_users: int = 120,
    n_groups: int = 8,
    group_size: int = 10,
    phases: int = 3,
    per_phase: int = 5,
    rng: int = 0,
) -> Dataset:
    """Users whose taste moves: each visits `phases` random groups one after another.

    Item i belongs to group `i // group_size`. A user takes `per_phase` random items of each
    group in turn, an hour apart, so what they take next is best predicted by their most
    recent items; their whole history mixes groups they have left. Ids are `u<code>` and
    `i<code>`.
    """
    gen = np.random.default_rng(rng)
    users: list[int] = []
    items: list[int] = []
    times: list[int] = []
    hour = 3_600 * 1_000_000
    for u in range(n_users):
        groups = gen.choice(n_groups, size=phases, replace=False)
        clock = int(gen.integers(0, 1_000)) * 24 * hour
        for group in groups:
            chosen = gen.choice(group_size, size=per_phase, replace=False) + group * group_size
            for item in chosen:
                users.append(u)
                items.append(int(item))
                times.append(clock)
                clock += hour
    return Dataset.from_arrays(
        user_ids=[f"u{u}" for u in range(n_users)],
        item_ids=[f"i{i}" for i in range(n_groups * group_size)],
        users=np.asarray(users),
        items=np.asarray(items),
        first_ts=np.asarray(times, dtype=np.int64),
    )


#: Two topics far apart in meaning, for items whose text should decide where they rank.
COOKING = (
    "a slow-cooked beef stew with root vegetables",
    "how to bake sourdough bread at home",
    "five quick pasta sauces for weeknights",
    "the secret of a flaky pie crust",
    "grilling salmon with lemon and herbs",
    "a spicy thai green curry recipe",
    "roasting a whole chicken for sunday dinner",
    "homemade dumplings step by step",
    "chocolate cake without eggs",
    "pickling cucumbers in summer",
)
SPACE = (
    "a rocket launch to the international space station",
    "the rings of saturn seen by a probe",
    "how black holes bend light",
    "mars rover finds traces of ancient water",
    "a guide to the constellations of winter",
    "the life cycle of a massive star",
    "astronauts train for a moon landing",
    "telescopes that look back to the big bang",
    "comets and the early solar system",
    "satellites mapping the galaxy",
)


def topic_text(code: int) -> str:
    """The text of item `code`: cooking when even, space when odd (`planted_blocks`' groups)."""
    topic = COOKING if code % 2 == 0 else SPACE
    return f"{topic[(code // 2) % len(topic)]} (part {code // (2 * len(topic)) + 1})"


def topical(data: Dataset) -> Dataset:
    """`data` with `topic_text` as each item's text: in `planted_blocks` data, a person's
    group and the topic of their items agree, so a content model can learn the groups."""
    return data.with_item_texts(
        {str(item): topic_text(code) for code, item in enumerate(data.item_ids)}
    )


def write_movielens(folder: Path, n_users: int = 80, n_items: int = 60, rng: int = 0) -> Path:
    """A MovieLens-format folder (ratings.csv, movies.csv): users who like one of two genres
    (even items Drama, odd Comedy) and, less, the other; the first items of each genre are
    the popular ones."""
    gen = np.random.default_rng(rng)
    rows = ["userId,movieId,rating,timestamp"]
    for user in range(n_users):
        own = user % 2
        for item in range(n_items):
            rank = item // 2
            liked = 0.6 if item % 2 == own else 0.15
            if gen.random() < liked * (1.0 - rank / (n_items / 2)) + 0.02:
                rows.append(f"{user + 1},{item + 1},4.0,{1_000_000 + 10 * user + item}")
    folder.mkdir()
    (folder / "ratings.csv").write_text("\n".join(rows) + "\n")
    movies = ["movieId,title,genres"]
    movies += [f"{i + 1},Movie {i},{'Drama' if i % 2 == 0 else 'Comedy'}" for i in range(n_items)]
    (folder / "movies.csv").write_text("\n".join(movies) + "\n")
    return folder
