"""Prompts: the attribute vocabulary, phrasings split into training and evaluation sets, polarity inference,
and how a request's boxes become prompts (the prompt-guided tasks are built from these in core/prompt_tasks.py;
the README's "Evaluation protocol" defines them).

Evaluation phrasings share no template and no wording of an attribute with training phrasings, so the
prompt benchmarks measure unseen wording.
"""
from __future__ import annotations

import hashlib
import random
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass

import numpy as np

from core.data import Dataset, spelling_key
from core.errors import SteerRecError

MAX_PROMPT_CHARS = 300
MAX_PROMPTS = 8
MIN_TAG_ITEMS = 20  # a tag becomes an attribute once this many items carry it

# Per genre: (training wordings, evaluation wordings); bare noun phrases that fit "I want ..." and "no ...".
GENRE_WORDS = {
    "Action": (["action", "action movies", "action-packed films", "explosions and fights", "shootouts", "martial arts films", "stunts and explosions", "blockbuster action"],
               ["adrenaline-fuelled action", "high-octane films", "fight scenes and car chases"]),
    "Adventure": (["adventure", "adventure films", "adventures", "epic quests", "quests and journeys", "adventurous films"],
                  ["swashbuckling journeys", "exploration and treasure hunts", "daring expeditions"]),
    "Animation": (["animation", "animated films", "cartoons", "animated movies", "animated cartoons", "computer animation"],
                  ["hand-drawn or computer-animated features", "anime and cartoons", "animated features"]),
    "Children's": (["kids movies", "children's films", "family films", "movies for children", "kids' films", "films for kids"],
                   ["something the whole family can watch", "films for young kids", "family-friendly stories"]),
    "Comedy": (["comedy", "comedies", "funny movies", "humorous films", "comedic films", "jokes and gags", "silly comedies"],
               ["something that makes me laugh", "a good laugh", "hilarious films"]),
    "Crime": (["crime", "crime films", "gangster movies", "heists and criminals", "the criminal underworld", "cops and crooks"],
              ["mobsters and robberies", "stories about criminals", "detective and crime stories"]),
    "Documentary": (["documentaries", "documentary films", "non-fiction films", "real-life stories on film", "nonfiction documentaries"],
                    ["factual films about the real world", "a true-story documentary", "docs"]),
    "Drama": (["drama", "dramas", "serious dramatic films", "emotional stories", "dramatic films", "heavy, serious films"],
              ["a moving, serious story", "tearjerkers", "character-driven dramatic films"]),
    "Fantasy": (["fantasy", "fantasy films", "magic and wizards", "fairy tales", "wizards and witches", "fantastical tales"],
                ["dragons and sorcery", "magical worlds", "mythical creatures and enchanted lands"]),
    "Film-Noir": (["film noir", "noir films", "dark crime noir", "hard-boiled detective noir", "noir", "noir detective stories"],
                  ["shadowy 1940s noir", "classic black-and-white noir thrillers", "femme fatales and private eyes"]),
    "Horror": (["horror", "horror films", "scary movies", "frightening films", "gore", "monsters and ghosts", "scary stuff"],
               ["something terrifying", "slasher flicks", "creepy, spine-chilling films"]),
    "Musical": (["musicals", "musical films", "song and dance", "movies with singing", "song-and-dance films", "musical numbers"],
                ["Broadway-style shows", "films full of songs", "singing and dancing"]),
    "Mystery": (["mystery", "mysteries", "whodunits", "puzzling mysteries", "mystery films", "unsolved puzzles"],
                ["a mystery to solve", "detective puzzles", "enigmatic stories"]),
    "Romance": (["romance", "romantic films", "love stories", "romantic movies", "romantic comedies", "love and relationships"],
                ["something romantic", "a date-night love story", "romcoms and love affairs"]),
    "Sci-Fi": (["science fiction", "sci-fi", "sci-fi movies", "space and aliens", "aliens and spaceships", "outer space adventures"],
               ["futuristic worlds", "robots and time travel", "science-fiction films"]),
    "Thriller": (["thrillers", "thriller films", "suspense", "suspenseful movies", "tense thrillers", "psychological thrillers", "suspense films"],
                 ["edge-of-your-seat suspense", "nail-biting tension", "gripping thrillers"]),
    "War": (["war films", "war movies", "battles and soldiers", "military stories", "war stories", "military films"],
            ["combat films", "stories of soldiers at the front", "movies about wartime"]),
    "Western": (["westerns", "western films", "cowboys", "cowboy movies", "ranchers and outlaws", "wild west movies"],
                ["gunslingers in the Wild West", "frontier cowboy tales", "the old West"]),
    "IMAX": (["IMAX", "IMAX films", "IMAX movies", "films shot for IMAX", "IMAX releases", "movies in IMAX"],
             ["something for the giant screen", "big-format spectacles", "films made for huge screens"]),
}
GENRE_ALIASES = {"Children": "Children's"}  # ML-10M and later spell it so

POSITIVE_TEMPLATES = (
    ["I want {x}", "show me {x}", "give me {x}", "I'm in the mood for {x}", "looking for {x}", "{x}",
     "recommend {x}", "I feel like watching {x}", "I'd like {x}", "find me {x}", "let's watch {x}"],
    ["I'd love some {x}", "can you find me {x}?", "tonight I'm craving {x}", "{x}, please",
     "something along the lines of {x}"],
)
NEGATIVE_TEMPLATES = (
    ["no {x}", "nothing with {x}", "I don't want {x}", "avoid {x}", "without {x}", "not {x}",
     "I hate {x}", "skip {x}", "I don't like {x}", "no more {x}", "exclude {x}", "I'm sick of {x}"],
    ["anything but {x}", "please, no {x}", "I'm not in the mood for {x}", "keep {x} away from me",
     "I can't stand {x}"],
)

NEGATION = re.compile(
    r"\b(no(?!-)|no-go|not|don'?t|do not|doesn'?t|didn'?t|isn'?t|aren'?t|wasn'?t|won'?t|nothing|none|without|"
    r"avoid\w*|except|anything but|other than|hate|dislike|never|skip|exclude\w*|rather not|sick of|tired of|"
    r"bored (?:of|with)|fed up with|can'?t stand|keep .+ away|less|fewer|zero|done with|pass on|"
    r"stop (?:showing|recommending|suggesting)|enough (?:with|of)|(?:stay|keep) away from|do without)\b",
    re.IGNORECASE)
# negation words that ask for more, not less: "nothing but comedies", "I never get tired of westerns", "I don't
# mind horror", "I have nothing against horror", "I wouldn't say no to a western", "I don't hate horror"
EMPHASIS = re.compile(r"\b(nothing but|no one but|only|can'?t get enough of|never (get |grow )?(tired|bored|sick) of|"
                      r"(don'?t|do not|wouldn'?t|would not) mind|nothing against|never miss|not bad|"
                      r"(wouldn'?t|would not|never|can'?t|couldn'?t) say no to|(don'?t|do not) hate)\b",
                      re.IGNORECASE)
# a piece after a comma that starts "but no ..." or "and ..." is read without the conjunction
LEADING_CONJUNCTION = re.compile(r"^(?:(?:but|and|or|yet)\s+)+(?=\S)", re.IGNORECASE)  # all of them: "and but x"
# typographic apostrophes (phone and Mac keyboards) read as the plain one, so "don’t" is a negation too
APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})
# the start of a new request: "give me ...", "I want ...", "I'd like ..."
NEW_REQUEST = (r"(?:give|show|find|get)\s+me\b|i\s+(?:want|need)\b|i'd\s+(?:like|love|prefer)\b"
               r"|i\s+(?:love|like|prefer)\s+(?=\w)")  # "I love thrillers", not "films my wife and I like"
# where a want phrase turns into an avoid ("comedies without romance", "action but no gore", "comedies and no
# horror", "comedies with no romance", "westerns except ...") or an avoid into a new request ("skip the musicals
# and give me westerns"); "I could do without musicals" is one avoid, not a want "I could do" and an exception
EXCEPTION = re.compile(r"(?<!\bdo)\s+(?:(?:but|and|with)\s+(?=(?:no|not|never|nothing)\b)|(?=(?:without|except)\b)|"
                       rf"(?:but|and)\s+(?={NEW_REQUEST}))", re.IGNORECASE)
# where an avoid turns into a want: "no horror only comedies", "nothing scary just cartoons", "I don't want horror
# I want comedies", "no horror give me westerns", "no horror but comedies" (split only after an avoid, so "I only
# want comedies" stays one want; "nothing but", "anything but" and "all but" are cues, not a turn, and "but my
# kids do" turns to no request)
TURN_TO_WANT = re.compile(rf"\s+(?=(?:only|just)\s+\S|{NEW_REQUEST})"
                          r"|(?<!\bnothing)(?<!\banything)(?<!\ball)(?<!\bno one)\s+but\s+"
                          r"(?!(?:no|not|never|nothing|my|his|her|their|our|your|he|she|they|we|it)\b)(?=\S)",
                          re.IGNORECASE)
# a refused wish: "I don't want ...", "I do not like ..."
REFUSED_WISH = re.compile(r"\b(?:don'?t|do not|doesn'?t|does not)\s+(?:want|like|need)\b", re.IGNORECASE)
# a want that turns into an avoid with no conjunction ("westerns not musicals", "comedies that are not romantic"):
# split there when what comes before names something
BARE_TURN = re.compile(r"\s+(?=(?:not|less|fewer)\s+\S|(?:that|which)\s+(?:(?:is|are)\s+not|isn'?t|aren'?t)\s+\S)",
                       re.IGNORECASE)
LATIN_LETTER = re.compile(r"[a-z]", re.IGNORECASE)
# words that name what a phrase is about: each genre, and the last word of each of its wordings ("comedies")
NAMING_WORDS = ({genre.lower() for genre in GENRE_WORDS}
                | {wording.split()[-1].lower() for parts in GENRE_WORDS.values() for part in parts for wording in part})
# words of four letters or more that end like a plural but name nothing ("something this is not")
FUNCTION_WORDS = {"does", "this", "hers", "ours", "yours", "theirs", "always", "perhaps", "unless", "towards",
                  "whereas", "sometimes"}
# a piece left with nothing but the exception's cue ("comedies without") asks for nothing
CUE_WORDS = {"without", "except", "no", "not", "never", "nothing", "but", "and"}
# words that carry no request on their own, so "comedies, please" is one phrase, "anything except horror" one
# avoid, and "I'm not sure, maybe comedies", "I don't know, something funny" and "westerns, nothing else" one want
FILLER = {"please", "pls", "thanks", "thank", "you", "ok", "okay", "hmm", "so", "just", "well", "and", "or", "also",
          "maybe", "oh", "hey", "hi", "a", "any", "anything", "something", "everything", "whatever", "movie",
          "movies", "film", "films", "stuff", "i", "i'm", "im", "not", "sure", "think", "guess", "perhaps", "dunno",
          "idk", "want", "like", "love", "i'd", "would", "could", "show", "give", "me", "to", "watch", "see",
          "no", "don't", "dont", "do", "know", "idea", "care", "mind", "picky", "preference", "preferences",
          "matter", "what", "doubt", "exceptions", "else", "nothing", "really", "honestly", "nah", "nope", "yeah",
          "yes", "yep", "um", "uh", "lol", "haha", "tonight", "today", "none", "n", "doesn't", "doesnt", "it",
          "fine", "either", "the", "an", "hello", "too", "much", "long", "bit", "little", "lot", "very"}


# the filler words that say "no wish" (or only "thank you") when a box holds nothing else
HEDGES = {"none", "nothing", "no", "nope", "nah", "n", "idk", "dunno", "know", "idea", "sure", "whatever", "anything",
          "doubt", "preference", "preferences", "matter", "care", "mind", "picky", "thanks", "thank", "please", "pls",
          "ok", "okay", "hmm", "um", "uh", "yes", "yeah", "yep", "lol", "haha", "hi", "hey", "else", "exceptions",
          "hello"}
# a piece of nothing but these names nothing either: an article alone, or a matter of degree ("not too long")
DEGREE = {"a", "an", "the", "not", "too", "much", "long", "bit", "little", "lot", "very"}


@dataclass(frozen=True)
class Prompt:
    text: str
    negative: bool


def infer_negative(text: str, titles: tuple[str, ...] = ()) -> bool:
    """True for phrasings that ask to exclude something ("no horror", "anything but musicals"): a negation cue
    that is not part of an insisting one ("nothing but comedies"), so "the only thing I don't want is horror" and
    "I don't mind anything but horror" are avoids; nor part of one of `titles` the phrase names ("something like
    Tomorrow Never Dies" is a want)."""
    held = [match.span() for match in EMPHASIS.finditer(text)] + title_spans(text, titles)
    return any(not any(start <= cue.start() and cue.end() <= end for start, end in held)
               for cue in NEGATION.finditer(text))


def title_spans(text: str, titles: tuple[str, ...]) -> list[tuple[int, int]]:
    """Where the phrase names one of the (lower-cased) titles."""
    lowered = text.lower()
    return [match.span() for title in titles for match in re.finditer(rf"\b{re.escape(title)}\b", lowered)]


def protected_titles(titles) -> tuple[str, ...]:
    """The catalogue's titles of two words or more that hold a negation cue ("tomorrow never dies", "rebel
    without a cause") or a comma ("sex, lies, and videotape"), lower-cased, without an alternate title in
    brackets: in a prompt they name a film, they neither negate nor separate phrases. A one-word title ("Hate")
    is left out, or "I hate horror" would read as a want, and so is a comma before a trailing article ("promise,
    the"), or "a broken promise, the kind ..." would not split."""
    names = {re.sub(r"\s*\(.*\)\s*$", "", str(title)).strip().lower() for title in titles}
    return tuple(sorted(name for name in names if len(name.split()) >= 2
                        and (NEGATION.search(name) or "," in re.sub(r",\s*(?:the|a|an)$", "", name))))


def clean_prompt(text) -> str:
    """Normalise one phrase; reject what cannot be a prompt with a message for a person."""
    if not isinstance(text, str):
        raise SteerRecError(f"a prompt must be text, got {type(text).__name__}")
    text = unicodedata.normalize("NFKC", text)  # full-width "ｃｏｍｅｄｙ" and ligatures as plain letters
    text = "".join(ch if ch.isprintable() else " " for ch in text.translate(APOSTROPHES))
    text = " ".join(text.split())
    if len(text) > MAX_PROMPT_CHARS:
        raise SteerRecError(f"a prompt may have at most {MAX_PROMPT_CHARS} characters; this one has {len(text)}")
    return text


def split_phrases(text, titles: tuple[str, ...] = ()) -> list[str]:
    """A box may hold several phrases, separated by commas, semicolons or new lines (or a list of such).
    Pieces made only of filler words ("please", "thanks") are dropped when the box says something else. A
    separator inside one of `titles` ("Sex, Lies, and Videotape") or inside a negation cue ("keep creepy,
    spine-chilling films away from me") separates nothing."""
    if text is None:
        return []
    if isinstance(text, (list, tuple)):
        return [phrase for part in text for phrase in split_phrases(part, titles)]
    if not isinstance(text, str):
        raise SteerRecError(f"a prompt must be text, got {type(text).__name__}")
    held = title_spans(text, titles) + [cue.span() for cue in NEGATION.finditer(text)]
    separators = [separator.span() for separator in re.finditer(r"[,;\n]+", text)]
    pieces = (LEADING_CONJUNCTION.sub("", clean_prompt(piece)) for piece in split_outside(text, separators, held))
    return without_filler([piece for piece in pieces if piece])


def split_outside(text: str, cuts: list[tuple[int, int]], held: list[tuple[int, int]]) -> list[str]:
    """`text` cut out at each (start, end) of `cuts` that starts neither inside a `held` span (a title, a cue)
    nor inside the cut before it: the pieces between."""
    pieces, position = [], 0
    for start, end in sorted(cuts):
        if start >= position and not any(a <= start < b for a, b in held):
            pieces.append(text[position:start])
            position = end
    return pieces + [text[position:]]


def ends_with_a_noun(phrase: str) -> bool:
    """Whether a phrase ends in a word that names something ("horror", "musicals", "violence") rather than
    describing it ("scary", "heavy", "serious"): the genres' own wordings, plurals and the endings of abstract
    nouns count as names."""
    words = re.findall(r"[a-z'-]+", phrase.lower())
    if not words or words[-1] in FUNCTION_WORDS:
        return False
    return words[-1] in NAMING_WORDS or re.search(r"\w\w(?:[^su]s|nce|ion|ment|ness|ity|ism)$", words[-1]) is not None


def split_exceptions(phrase: str, titles: tuple[str, ...] = ()) -> list[str]:
    """A want phrase with an exception, as the want and the avoid it holds: "comedies without romance" ->
    ["comedies", "without romance"]; "action but no gore" -> ["action", "no gore"]; "skip the musicals and give me
    westerns" -> ["skip the musicals", "give me westerns"]; "no horror only comedies" -> ["no horror", "only
    comedies"]; "westerns not musicals" -> ["westerns", "not musicals"]. A dangling cue ("comedies without") is
    dropped, and a title is never split ("Rebel Without a Cause")."""
    cuts = [cut.span() for cut in EXCEPTION.finditer(phrase)]
    cuts += [cut.span() for cut in BARE_TURN.finditer(phrase)  # "westerns not musicals", "more comedy less drama"
             if ends_with_a_noun(phrase[:cut.start()]) and not infer_negative(phrase[:cut.start()], titles)]
    pieces = [piece.strip() for piece in split_outside(phrase, cuts, title_spans(phrase, titles)) if piece.strip()]
    pieces = [part for piece in pieces for part in split_turn_to_want(piece, titles)]
    said = [piece for piece in pieces if not set(re.findall(r"[\w']+", piece.lower())) <= CUE_WORDS]
    return without_filler(said or pieces)


def split_turn_to_want(phrase: str, titles: tuple[str, ...] = ()) -> list[str]:
    """An avoid followed by a want with no conjunction ("no horror only comedies", "I don't want horror I want
    comedies") as the avoid and the want; anything else unchanged."""
    head, *rest = TURN_TO_WANT.split(phrase, maxsplit=1)
    return [head, *rest] if rest and infer_negative(head, titles) else [phrase]


def filler_words(piece: str) -> set[str] | None:
    """The piece's words when they are all filler ("please", "movies", "I don't know"), else None."""
    words = set(re.findall(r"[\w']+", piece.lower()))
    return words if words <= FILLER else None


def says_nothing(piece: str) -> bool:
    """Alone in a box, only filler with a hedge or a courtesy in it ("please", "none", "I don't know", "no
    preference"), or only an article or a matter of degree ("the", "not too long"). Filler without one can
    still mean something alone ("love", "something to watch", "a love film") and is read."""
    words = filler_words(piece)
    return words is not None and bool(words & HEDGES or words <= DEGREE)


def without_filler(pieces: list[str]) -> list[str]:
    """The pieces that say something beside filler ones ("comedies, please"), or all of them where every piece is
    filler (then `build_prompts` leaves out those that only hedge, with a note). Filler that refuses a wish ("I
    don't want long" in "I don't want long, slow dramas") is kept, for the phrase after it to take its "not"."""
    meaningful = [p for p in pieces if filler_words(p) is None or lends_a_negation(p)]
    return meaningful or pieces


def has_its_own_cue(phrase: str) -> bool:
    """A negation or insistence of its own, or the start of a request ("just comedies", "something light")."""
    return bool(NEGATION.search(phrase) or EMPHASIS.search(phrase)
                or re.match(rf"(?:{NEW_REQUEST}|(?:something|some|only|just|instead)\b)", phrase, re.IGNORECASE))


def lends_a_negation(piece: str) -> bool:
    """A piece of filler words that refuses a wish ("I don't want long" in "I don't want long, slow dramas"): it
    says "not" about the phrase after it. Other filler with a cue ("not really", "not tonight") says nothing."""
    return filler_words(piece) is not None and REFUSED_WISH.search(piece) is not None


def as_phrase_list(value) -> list:
    """None, one phrase or a list of phrases, as a list (anything else is a clear error). A box left empty or
    blank asks for nothing; blank phrases in a list are a mistake that `build_prompts` reports."""
    if value is None or isinstance(value, str) and not value.strip():
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return list(value)
    raise SteerRecError(f"prompts must be text or a list of texts, got {type(value).__name__}")


class Prompts(list):
    """The prompts of a request, and in `left_out` the phrases that said nothing to steer by ("none", "thanks",
    "I don't know"): read as a genre they would steer blindly, so they are left out and the answer says so."""

    def __init__(self, prompts=(), left_out=()):
        super().__init__(prompts)
        self.left_out = list(left_out)


def build_prompts(want=(), avoid=(), titles: tuple[str, ...] = ()) -> Prompts:
    """The prompts of a request, each box split into its phrases (as `split_phrases` does, so the app, the API
    and the CLI read a box alike). A want phrase that is phrased negatively ("no horror") is an avoid, and one
    with an exception ("comedies without romance") is a want and an avoid; a negation inside one of `titles`
    (from `protected_titles`) does not count, and a comma inside one separates nothing. A box that holds only
    filler is left out."""
    given_want, given_avoid = as_phrase_list(want), as_phrase_list(avoid)
    phrases = split_phrases(given_want, titles)
    prompts = []
    for index, phrase in enumerate(phrases):
        if lends_a_negation(phrase) and len(phrases) > 1:
            continue  # "I don't want long, slow dramas": "slow dramas" is the avoid
        lent = index > 0 and lends_a_negation(phrases[index - 1]) and not has_its_own_cue(phrase)
        prompts += [Prompt(part, lent or infer_negative(part, titles)) for part in split_exceptions(phrase, titles)]
    prompts += [Prompt(text, True) for text in split_phrases(given_avoid, titles)]
    prompts.sort(key=lambda prompt: prompt.negative)  # wants first, as a Recommendation lists them
    if (given_want or given_avoid) and not prompts:
        raise SteerRecError("the prompt is empty: type what you want or want to avoid, e.g. 'something funny'")
    unreadable = next((p.text for p in prompts if not LATIN_LETTER.search(p.text)), None)
    if unreadable is not None:  # the text encoder reads English: emoji or another script would be a blind guess
        raise SteerRecError(f"cannot read {unreadable!r}: prompts are read as English words, e.g. 'something "
                            "funny' or 'no horror'")
    if len(prompts) > MAX_PROMPTS:
        raise SteerRecError(f"at most {MAX_PROMPTS} prompts at once; got {len(prompts)}")
    return Prompts([p for p in prompts if not says_nothing(p.text)], [p.text for p in prompts if says_nothing(p.text)])


def instruction(prompts: list[Prompt]) -> str | None:
    """The prompts as one line of text placed before the history, for an LLM-based recommender (MixRec)."""
    wants = [p.text for p in prompts if not p.negative]
    avoids = [p.text for p in prompts if p.negative]
    parts = ([f"I want: {'; '.join(wants)}."] if wants else []) + ([f"Avoid: {'; '.join(avoids)}."] if avoids else [])
    return " ".join(parts) or None


# ------------------------------------------------------------------------------------------- vocabulary

def attribute_vocabulary(dataset: Dataset) -> list[str]:
    """Genres, plus tags carried by at least MIN_TAG_ITEMS items that are not a genre spelt otherwise (tags are
    lower-cased: a 'horror' tag beside the Horror genre would split every reading of "horror" in two)."""
    genres = Counter(g for item in dataset.genres for g in item)
    tags = Counter(t for item in dataset.tags for t in item)
    vocab = sorted(g for g in genres if g != "unknown")
    genre_keys = {spelling_key(g) for g in genres}
    vocab += sorted(t for t, n in tags.items()
                    if n >= MIN_TAG_ITEMS and spelling_key(t) and spelling_key(t) not in genre_keys)
    if not vocab:
        rare = f", and none of its {len(tags)} tags is on {MIN_TAG_ITEMS} or more items" if tags else " or tags"
        raise SteerRecError(f"{dataset.name} has no genres{rare}: prompts need item attributes")
    return vocab


def steerable_vocabulary(dataset: Dataset) -> list[str]:
    """The attribute vocabulary, refused where DPR cannot be trained on it: an avoid prompt needs items without
    the attribute it names, so one attribute is not enough."""
    vocab = attribute_vocabulary(dataset)
    if len(vocab) < 2:
        raise SteerRecError(f"{dataset.name} has one item attribute ({vocab[0]}): DPR needs two or more, since an "
                            "avoid prompt needs items without the attribute it names")
    return vocab


def attribute_matrix(dataset: Dataset, vocab: list[str]) -> np.ndarray:
    """(attributes, num_items + 1) booleans: which item carries which attribute."""
    position = {a: i for i, a in enumerate(vocab)}
    matrix = np.zeros((len(vocab), dataset.num_items + 1), dtype=bool)
    for item in range(1, dataset.num_items + 1):
        for attribute in dataset.attributes(item):
            if attribute in position:
                matrix[position[attribute], item] = True
    return matrix


def wordings(attribute: str, part: str) -> list[str]:
    attribute = GENRE_ALIASES.get(attribute, attribute)
    train, evaluation = GENRE_WORDS.get(attribute, ([attribute.lower(), f"{attribute.lower()} movies"],
                                                    [f"films that are {attribute.lower()}"]))
    return train if part == "train" else evaluation


def phrasings(attribute: str, negative: bool, part: str) -> list[str]:
    """Every phrasing of an attribute for one polarity and one part ('train' or 'eval')."""
    templates = (NEGATIVE_TEMPLATES if negative else POSITIVE_TEMPLATES)[0 if part == "train" else 1]
    return [t.format(x=w) for t in templates for w in wordings(attribute, part)]


def pick_phrasing(attribute: str, negative: bool, part: str, key) -> str:
    """A deterministic choice among the phrasings, keyed by e.g. the user id."""
    options = phrasings(attribute, negative, part)
    seed = int(hashlib.sha256(f"{key}|{attribute}|{negative}".encode()).hexdigest()[:8], 16)
    return options[random.Random(seed).randrange(len(options))]

