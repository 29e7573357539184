"""The simulated world's vocabulary: topic words, user attribute values, and text rendering."""

from __future__ import annotations

import re

import numpy as np
from numpy.typing import NDArray

#: Topics of the simulated catalogue: a name, then sixteen words its items tend to use.
_THEMES = """
cooking: recipe oven garlic pasta bake spice kitchen sauce roast dough flavour simmer butter
    herbs dinner skillet
travel: journey island passport hostel itinerary coast flight backpack border harbour map train
    village luggage tour ferry
sports: match league goal coach stadium season striker referee tournament score team training
    derby champion sprint defence
technology: software chip laptop server network algorithm battery startup cloud processor code
    robot sensor firmware device browser
music: album guitar melody concert drummer chorus vinyl band lyrics rhythm tempo orchestra
    singer studio festival piano
gardening: seedling compost soil tomato prune bloom greenhouse mulch perennial shovel orchard
    weeds bulbs hedge watering harvest
finance: budget savings pension interest stocks mortgage dividend inflation portfolio loan tax
    bond invoice credit market wealth
fashion: jacket denim runway fabric sneakers collection stylist scarf tailored linen wardrobe
    boutique silk pattern leather outfit
science: experiment molecule telescope physics laboratory genome particle hypothesis galaxy
    fossil climate enzyme quantum microscope orbit cell
film: director screenplay premiere actor cinema trailer sequel camera documentary scene studio
    thriller comedy festival editing cast
books: novel author chapter poetry library paperback memoir publisher fiction reader plot
    narrator essay bookshop manuscript saga
fitness: workout squat cardio stretching protein treadmill yoga muscle marathon endurance
    dumbbell pilates recovery gym interval posture
gaming: console quest multiplayer level controller boss pixel speedrun dungeon esports arcade
    sandbox shooter puzzle lobby loot
pets: puppy kitten leash veterinarian aquarium parrot grooming litter kibble hamster adoption
    collar shelter tortoise treats paws
history: empire medieval archive dynasty revolution castle treaty pharaoh monarch artifact
    battle colonial chronicle ruins ancient century
art: painting canvas gallery sculpture sketch watercolour portrait exhibition mural ceramics
    brush curator abstract easel etching pigment
health: sleep nutrition vitamin doctor clinic immune allergy therapy wellbeing diet symptom
    hydration vaccine stress checkup heart
cars: engine sedan torque electric garage tyres hybrid roadtrip dashboard mileage convertible
    gearbox charging horsepower dealer brakes
home: sofa renovation paint shelves lighting carpet kitchenware decor curtains cushion tiles
    storage bedroom furniture plumbing lamp
outdoors: hiking tent trail canoe summit campfire compass wilderness kayak boots forest glacier
    binoculars valley climbing lake
"""

#: Words any item may use, whatever its topic.
_GENERIC = """
guide best new how why week story tips review update simple people inside today first ideas look
better year small classic future notes everyday great plan real quick deep home
"""

THEMES: tuple[tuple[str, tuple[str, ...]], ...] = tuple(
    (name.strip(), tuple(words.split()))
    for name, words in (block.split(":", 1) for block in re.split(r"\n(?=\S)", _THEMES.strip()))
)
GENERIC: tuple[str, ...] = tuple(_GENERIC.split())

THEME_WORDS = 16

#: User attribute values and how common each is.
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
AGE_P = (0.16, 0.26, 0.22, 0.16, 0.12, 0.08)
COUNTRIES = ("US", "GB", "DE", "FR", "IN", "BR", "JP", "CA", "ES", "NL")
COUNTRY_P = (0.3, 0.12, 0.1, 0.08, 0.12, 0.08, 0.06, 0.06, 0.04, 0.04)


def vocabulary(n_categories: int) -> tuple[list[str], list[str], NDArray[np.int64]]:
    """The words, the category names and each category's topical word indices.

    Beyond the built-in themes, categories reuse a theme's words under a numbered name.

    Args:
        n_categories: how many categories the world has.

    Returns:
        (words, category names, an (n_categories, 16) matrix of indices into words).
    """
    words = list(GENERIC)
    first: list[int] = []
    for _, theme_words in THEMES:
        first.append(len(words))
        words.extend(theme_words[:THEME_WORDS])
    names: list[str] = []
    rows: list[list[int]] = []
    for c in range(n_categories):
        theme = c % len(THEMES)
        lap = c // len(THEMES)
        names.append(THEMES[theme][0] if lap == 0 else f"{THEMES[theme][0]}-{lap + 1}")
        rows.append(list(range(first[theme], first[theme] + THEME_WORDS)))
    return words, names, np.asarray(rows, dtype=np.int64)


def draw_words(
    rng: np.random.Generator,
    item_categories: NDArray[np.int64],
    category_words: NDArray[np.int64],
    count: int,
    topical_share: float,
) -> NDArray[np.int64]:
    """Word indices for each item: mostly topical words of its categories, some generic.

    Args:
        rng: the random generator.
        item_categories: (n_items, 3) category indices, -1 where an item has fewer.
        category_words: the matrix returned by `vocabulary`.
        count: words per item.
        topical_share: the chance that a word is topical rather than generic.

    Returns:
        An (n_items, count) matrix of indices into the vocabulary.
    """
    n = item_categories.shape[0]
    weights = np.where(item_categories >= 0, np.array([0.6, 0.25, 0.15]), 0.0)
    cum = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
    slot = (rng.random((n, count, 1)) > cum[:, None, :-1]).sum(axis=2)
    cats = np.take_along_axis(item_categories, slot, axis=1)
    topical = category_words[cats, rng.integers(category_words.shape[1], size=(n, count))]
    generic = rng.integers(len(GENERIC), size=(n, count))
    return np.where(rng.random((n, count)) < topical_share, topical, generic)


def render_title(words: list[str], indices: NDArray[np.int64]) -> str:
    """A title from word indices: the words joined, the first capitalized."""
    text = " ".join(words[i] for i in indices)
    return text[:1].upper() + text[1:]


def render_text(words: list[str], indices: NDArray[np.int64], sentence: int = 9) -> str:
    """A body text from word indices, cut into sentences of `sentence` words."""
    parts = [words[i] for i in indices]
    sentences = [" ".join(parts[k : k + sentence]) for k in range(0, len(parts), sentence)]
    return " ".join(s[:1].upper() + s[1:] + "." for s in sentences)
