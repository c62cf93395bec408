"""Datasets: MovieLens-100K from the installed `recbole` wheel, or the user's own files by path.

Every loader ends in `Dataset.build`, which owns the two choices that every number depends on:
- interactions are ordered by (user, timestamp) with a *stable* sort, so ratings that share a second keep the
  file's order (an item-id tie-break would plant an order that the model learns and the test split rewards);
- leave-one-out: last item = test target, second-to-last = validation target, the rest = training.

Internal ids start at 1; 0 is padding. External ids are the dataset's own, kept as strings.
"""
from __future__ import annotations

import csv
import functools
import hashlib
import io
import itertools
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core.errors import DataFormatError, SteerRecError

DEFAULT_DATASET = "ml-100k"
MIN_INTERACTIONS = 3  # a user needs a training item, a validation target and a test target
TAGS_PER_ITEM = 10


def spelling_key(name: str) -> str:
    """A name without case, spaces or punctuation, letters of any script kept: 'sci-fi', 'Sci-Fi' and 'scifi'
    agree, as do 'ML-1M' and 'ml_1m'."""
    return re.sub(r"[\W_]+", "", name.casefold())


@dataclass
class Dataset:
    name: str
    user_ids: list[str]  # external id per internal user id; index 0 is padding
    item_ids: list[str]  # external id per internal item id; index 0 is padding
    titles: list[str]
    years: list[str]
    genres: list[tuple[str, ...]]
    tags: list[tuple[str, ...]]
    sequences: list[np.ndarray]  # per internal user: internal item ids in time order
    timestamps: list[np.ndarray]
    ratings: list[np.ndarray]
    fingerprint: str = ""
    source: str = ""  # the path it was loaded from; empty for the default dataset
    dropped_users: frozenset = frozenset()  # external ids of users left out for too few interactions
    _user_index: dict = field(default_factory=dict, repr=False)
    _item_index: dict = field(default_factory=dict, repr=False)

    @property
    def num_users(self) -> int:
        return len(self.user_ids) - 1

    @property
    def num_items(self) -> int:
        return len(self.item_ids) - 1

    @functools.cached_property
    def has_years(self) -> bool:
        return any(self.years[1:])

    @functools.cached_property
    def has_ratings(self) -> bool:
        """False for implicit data (events without a rating), whose ratings are all NaN."""
        return any(not np.isnan(r).all() for r in self.ratings[1:])

    @property
    def default_max_len(self) -> int:
        """200 for ML-1M (its folder named ml-1m, ML-1M, movielens-1m, ...), as in SASRec's paper; else 50."""
        return 200 if spelling_key(self.name).startswith(("ml1m", "movielens1m")) else 50

    def user_index(self, user) -> int:
        """Internal id of an external user id (int or str)."""
        key = str(user).strip()
        if key in self.dropped_users:
            raise SteerRecError(f"user {key[:40]!r} is in {self.name}'s ratings but was left out: a user needs "
                                f"{MIN_INTERACTIONS} or more interactions (a training item, a validation and a test "
                                "target)")
        if key not in self._user_index:
            raise SteerRecError(f"unknown user {str(user)[:40]!r} in {self.name} "
                                f"(ids are the dataset's own, e.g. {self.user_ids[1]!r})")
        return self._user_index[key]

    def item_index(self, item) -> int:
        key = str(item).strip()
        if key not in self._item_index:
            raise SteerRecError(f"unknown item {str(item)[:40]!r} in {self.name} "
                                f"(ids are the dataset's own, e.g. {self.item_ids[1]!r})")
        return self._item_index[key]

    def item_text(self, item: int) -> str:
        """The one string that text encoders see for an item."""
        text = f"{self.titles[item]} ({self.years[item]})" if self.years[item] else self.titles[item]
        text += ". Genres: " + (", ".join(self.genres[item]) or "unknown")
        if self.tags[item]:
            text += ". Tags: " + ", ".join(self.tags[item])
        return text

    def split(self, user: int, part: str) -> tuple[np.ndarray, int]:
        """(history, target) of a user for 'valid' or 'test'; training uses `sequences[u][:-2]`."""
        seq = self.sequences[user]
        if part == "valid":
            return seq[:-2], int(seq[-2])
        if part == "test":
            return seq[:-1], int(seq[-1])
        raise SteerRecError(f"unknown split {part!r}: expected 'valid' or 'test'")

    def attributes(self, item: int) -> tuple[str, ...]:
        return self.genres[item] + self.tags[item]

    @classmethod
    def build(cls, name: str, inter: pd.DataFrame, items: pd.DataFrame) -> "Dataset":
        """inter: user, item, timestamp (float), rating (float, may be NaN), in file order.
        items: item, title, year, genres (tuple), tags (tuple)."""
        repeated = inter.duplicated(["user", "item", "timestamp"])
        if repeated.any():  # the same event twice (a repeat at another time is a real repeat and stays)
            count = int(repeated.sum())
            warnings.warn(f"{name}: {count} {'row repeats' if count == 1 else 'rows repeat'} an earlier row's user, "
                          "item and timestamp (left out)", stacklevel=2)
            inter = inter[~repeated]
        counts = inter["user"].value_counts()
        dropped = frozenset(counts.index[counts < MIN_INTERACTIONS])
        inter = inter[~inter["user"].isin(dropped)]
        if inter.empty:
            raise SteerRecError(f"{name}: no user has {MIN_INTERACTIONS} or more interactions")
        if dropped:
            warnings.warn(f"{name}: {len(dropped)} of {len(counts)} users have fewer than {MIN_INTERACTIONS} "
                          "interactions and are left out", stacklevel=2)
        if items.empty:
            warnings.warn(f"{name}: no item file beside the ratings (or an empty one), so items have no titles or "
                          "genres (they show as 'Item <id>'); DPR, the prompt tasks and the genre views need genres",
                          stacklevel=2)
        else:
            repeated_items = pd.unique(items.loc[items["item"].duplicated(), "item"])
            if len(repeated_items):
                warnings.warn(f"{name}: {len(repeated_items)} item {'id is' if len(repeated_items) == 1 else 'ids are'}"
                              f" listed more than once in the item file (e.g. {repeated_items[0]!r}); the first row "
                              "of each is kept", stacklevel=2)
            unlisted = pd.unique(inter.loc[~inter["item"].isin(items["item"]), "item"])
            if len(unlisted):
                warnings.warn(f"{name}: {len(unlisted)} of {inter['item'].nunique()} rated items are not in the "
                              f"item file (e.g. {unlisted[0]!r}), so they have no title or genres; check that both "
                              "files write item ids alike", stacklevel=2)

        item_ids = ["<pad>"] + list(dict.fromkeys(list(items["item"]) + list(inter["item"])))
        item_index = {item: i for i, item in enumerate(item_ids) if i}  # padding is no item
        meta = items.drop_duplicates("item").set_index("item")
        titles, years, genres, tags = ["<pad>"], [""], [()], [()]
        for item in item_ids[1:]:
            if item in meta.index:
                row = meta.loc[item]
                titles.append(row["title"]); years.append(row["year"])
                genres.append(row["genres"]); tags.append(row["tags"])
            else:
                titles.append(f"Item {item}"); years.append(""); genres.append(()); tags.append(())

        user_ids = ["<pad>"] + list(dict.fromkeys(inter["user"]))
        user_index = {user: u for u, user in enumerate(user_ids) if u}
        users = inter["user"].map(user_index).to_numpy()
        time = inter["timestamp"].to_numpy(dtype=np.float64)
        order = np.lexsort((time, users))  # lexsort is stable: ties keep the file's order
        users, time = users[order], time[order]
        item_col = inter["item"].map(item_index).to_numpy()[order].astype(np.int64)
        rating_col = inter["rating"].to_numpy(dtype=np.float64)[order]
        bounds = np.flatnonzero(np.diff(users)) + 1
        sequences = [np.zeros(0, np.int64)] + np.split(item_col, bounds)
        timestamps = [np.zeros(0)] + np.split(time, bounds)
        ratings = [np.zeros(0)] + np.split(rating_col, bounds)

        digest = hashlib.sha256()
        for part in (users, item_col, time):
            digest.update(np.ascontiguousarray(part).tobytes())
        digest.update("\n".join(item_ids).encode())
        return cls(name, user_ids, item_ids, titles, years, genres, tags, sequences, timestamps, ratings,
                   fingerprint=digest.hexdigest()[:16], dropped_users=dropped, _user_index=user_index,
                   _item_index=item_index)


# ---------------------------------------------------------------------------------------------- readers

def _display_title(title: str) -> tuple[str, str]:
    """'Usual Suspects, The (1995)' -> ('The Usual Suspects', '1995')."""
    title = title.strip()
    year = ""
    match = re.search(r"\s*\((\d{4})\)\s*$", title)
    if match:
        year, title = match.group(1), title[: match.start()]
    match = re.match(r"^(.*), (The|A|An|Les|La|Le|L'|Il|Das|Der|Die|El)$", title)
    if match:
        title = f"{match.group(2)} {match.group(1)}".replace("L' ", "L'")
    return title, year


@dataclass(frozen=True)
class _Source:
    """Where a table's rows come from, to name the file line of a bad row. pandas skips blank lines (spaces and
    tabs other than the separator), so the line is counted again from the file, and only when there is an error."""
    path: Path
    sep: str = "\t"
    header: int = 1  # lines before the first row, blank lines aside (pandas skips those before a header too)

    def line(self, row: int) -> int:
        blank = b" \t\r\n".replace(self.sep.encode(), b"")
        with open(self.path, "rb") as handle:
            lines = (number for number, text in enumerate(handle, 1) if text.strip(blank))
            return next(itertools.islice(lines, self.header + row, None), None)  # None: names the file only


def _has_content(path: Path) -> bool:
    """An optional side file (items, tags) counts when it exists and holds more than blank space: an empty one is
    as good as none, in every format alike."""
    if not path.is_file():
        return path.exists()  # a folder in its place is reported by the reader
    with open(path, "rb") as file:
        return bool(file.read(1 << 16).strip()) or path.stat().st_size > 1 << 16


def _read_text(path: Path) -> str:
    """A MovieLens text file: UTF-8 where its bytes are UTF-8, else Latin-1 (what GroupLens wrote ML-100K and
    ML-1M in; every byte string is valid Latin-1, so this never fails on content)."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise SteerRecError(f"{path} cannot be read: {error.strerror or error}") from None
    try:
        return raw.decode("utf-8-sig")  # a byte-order mark is no part of the first id
    except UnicodeDecodeError:
        return raw.decode("latin-1")


SEPARATOR_NAMES = {"\t": "tabs", ",": "commas"}


def fields(count) -> str:
    return f"{count} field{'' if int(count) == 1 else 's'}"


def _require_separator(path: Path, separator: str, described: str) -> str:
    """The text of a headerless ratings file whose first line holds `separator`; otherwise a DataFormatError
    naming that line (a file split by something else would read as one field a line)."""
    text = _read_text(path)
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            if separator not in line:
                raise DataFormatError(path, number, f"fields separated by {described}", repr(line[:80]))
            break
    return text


def _refuse_one_column_header(path: Path, sep: str, header: str, typed: bool) -> None:
    """A header read as one column that holds another separator: the file was written with that one. (No header
    of these formats holds these characters; a RecBole one holds no space either.)"""
    if re.search(r"[,;\t| ]" if typed else r"[,;\t|]", header):
        raise DataFormatError(path, 1, f"columns separated by {SEPARATOR_NAMES.get(sep, repr(sep))}", repr(header[:80]))


def _read_table(path: Path, names=None, sep="\t", text=None, quoting=csv.QUOTE_NONE, typed=False) -> pd.DataFrame:
    """Read a delimited file as strings; a ragged line or a repeated column becomes a DataFormatError naming it.
    The header is read as a row because pandas would silently rename a repeated column 'x' to 'x.1'.
    typed: a RecBole header of 'name:type' columns, kept as 'name'."""
    try:
        source = io.StringIO(text) if text is not None else path
        frame = pd.read_csv(source, sep=sep, names=names, header=None, dtype=str, keep_default_na=False,
                            quoting=quoting, encoding="utf-8", skip_blank_lines=True)
    except OSError as error:
        raise SteerRecError(f"{path} cannot be read: {error.strerror or error}") from None
    except pd.errors.ParserError as error:
        match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(error))
        if match and match.group(1) == "1" and not names:  # a one-column header, then a title with a comma
            header = (text if text is not None else path.read_text(encoding="utf-8", errors="replace")).lstrip()
            _refuse_one_column_header(path, sep, header.splitlines()[0], typed)
        if match:
            raise DataFormatError(path, match.group(2), fields(match.group(1)), fields(match.group(3))) from None
        raise DataFormatError(path, None, "a delimited text table", str(error)[:80]) from None
    except pd.errors.EmptyDataError:
        raise DataFormatError(path, 1, "a header line and data", "an empty file") from None
    except UnicodeDecodeError as error:
        raise DataFormatError(path, None, "UTF-8 text", f"byte {error.object[error.start]:#x}") from None
    if not names:
        header = list(frame.iloc[0])
        if len(header) == 1:
            _refuse_one_column_header(path, sep, header[0], typed)
        columns = [c.split(":")[0] for c in header] if typed else header
        repeated = [h for h, c in zip(header, columns) if columns.count(c) > 1]
        if repeated:
            raise DataFormatError(path, 1, "distinct column names", ", ".join(map(repr, repeated)))
    if len(frame) and (frame.iloc[:, -1] == "").any():  # pandas fills a short line's missing fields with ''
        short = _short_line(text if text is not None else path.read_text(encoding="utf-8"), sep, quoting,
                            frame.shape[1])
        if short:
            raise DataFormatError(path, short[0], fields(frame.shape[1]), fields(short[1]))
    return frame if names else frame.iloc[1:].set_axis(columns, axis=1)


def _short_line(text: str, sep: str, quoting: int, fields: int) -> tuple[int, int] | None:
    """(line number, fields) of the first non-blank line with fewer than `fields` fields, or None."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, quoting=quoting)
    for row in reader:
        if any(field.strip() for field in row) and len(row) < fields:
            return reader.line_num, len(row)
    return None


def _require_columns(frame: pd.DataFrame, path: Path, columns: list[str]):
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataFormatError(path, 1, f"columns {', '.join(columns)}",
                              ", ".join(map(str, frame.columns)) or "no columns")


def _numbers(frame: pd.DataFrame, column: str, source: _Source, optional=False) -> pd.Series:
    """Column as floats; the first non-number is reported with its line number. 'inf', 'nan' and '1e400' parse
    as floats but are no time or rating (a later date conversion would overflow), so they are refused too.
    optional: an empty field is NaN (a rating: every interaction is implicit, so a missing rating is no error)."""
    raw = frame[column]
    values = pd.to_numeric(raw.where(raw != "", None) if optional else raw, errors="coerce").astype(float)
    bad = ~np.isfinite(values) & (raw != "" if optional else True)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataFormatError(source.path, source.line(row), f"a finite number in column {column!r}",
                              repr(raw.iloc[row]))
    return values


def _ids(frame: pd.DataFrame, column: str, source: _Source) -> pd.Series:
    values = frame[column].str.strip()
    empty = values == ""
    if empty.any():
        row = int(np.flatnonzero(empty.to_numpy())[0])
        raise DataFormatError(source.path, source.line(row), f"an id in column {column!r}", "an empty field")
    return values


NO_GENRE = {"", "unknown", "(no genres listed)"}  # placeholders the formats write where an item has none


def _genres(text: str, separator: str | None = "|") -> tuple[str, ...]:
    """The genre names of one field, stripped, placeholders left out. separator None: '|' where the field has
    one (MovieLens's own, "Science Fiction|Horror"), else whitespace (a RecBole token_seq)."""
    if text.strip() in NO_GENRE:  # before splitting: "(no genres listed)" is one placeholder, not three genres
        return ()
    if separator is None and "|" in text:
        separator = "|"
    return tuple(g.strip() for g in text.split(separator) if g.strip() not in NO_GENRE)


def _items_frame(ids, raw_titles, years, genres, tags) -> pd.DataFrame:
    titles, parsed_years = zip(*(_display_title(t) for t in raw_titles)) if len(raw_titles) else ((), ())
    years = [y or p for y, p in zip(years, parsed_years)]
    return pd.DataFrame({"item": list(ids), "title": list(titles), "year": years,
                         "genres": list(genres), "tags": list(tags)})


def _top_tags(tags: pd.DataFrame | None) -> dict[str, tuple[str, ...]]:
    if tags is None or tags.empty:
        return {}
    tags = tags.assign(tag=tags["tag"].str.strip().str.lower())
    tags = tags[tags["tag"] != ""]
    counts = tags.groupby(["item", "tag"]).size().reset_index(name="n")
    counts = counts.sort_values(["item", "n", "tag"], ascending=[True, False, True], kind="stable")
    return {item: tuple(group["tag"].head(TAGS_PER_ITEM)) for item, group in counts.groupby("item")}


def _interactions(frame: pd.DataFrame, source: _Source, user: str, item: str) -> pd.DataFrame:
    """user, item, timestamp, rating (NaN where the table has none) of a ratings table, its user and item
    columns named by `user` and `item`; a bad field is reported with its line."""
    if frame.empty:
        raise DataFormatError(source.path, None, "one interaction per line", "no rows")
    return pd.DataFrame({
        "user": _ids(frame, user, source), "item": _ids(frame, item, source),
        "timestamp": _numbers(frame, "timestamp", source),
        "rating": _numbers(frame, "rating", source, optional=True) if "rating" in frame else np.nan,
    })


# the .item columns RecBole's datasets and its conversion tools write (ML-100K's, ML-1M's, ML-10M/20M's)
TITLE_COLUMNS = ("movie_title", "movie_name", "title")
GENRE_COLUMNS = ("class", "genre", "genres", "type")


def load_atomic(inter_path: Path) -> Dataset:
    """RecBole atomic files: NAME.inter (user_id, item_id, timestamp[, rating]) + NAME.item beside it."""
    inter_path = Path(inter_path)
    frame, source = _read_table(inter_path, typed=True), _Source(inter_path)
    _require_columns(frame, inter_path, ["user_id", "item_id", "timestamp"])
    inter = _interactions(frame, source, "user_id", "item_id")
    item_path = inter_path.with_suffix(".item")
    if _has_content(item_path):
        meta = _read_table(item_path, typed=True)
        _require_columns(meta, item_path, ["item_id"])
        title_col = next((c for c in TITLE_COLUMNS if c in meta), None)
        year_col = next((c for c in ("release_year", "year") if c in meta), None)
        genre_col = next((c for c in GENRE_COLUMNS if c in meta), None)
        for found, kind, names in ((title_col, "title", TITLE_COLUMNS), (genre_col, "genre", GENRE_COLUMNS)):
            if found is None:
                warnings.warn(f"{item_path.name} has no {kind} column ({', '.join(names)}), so items have no "
                              f"{kind}s", stacklevel=2)
        ids = _ids(meta, "item_id", _Source(item_path))
        titles = meta[title_col] if title_col else "Item " + ids
        years = meta[year_col].where(meta[year_col].str.fullmatch(r"\d{4}"), "") if year_col else [""] * len(ids)
        genres = [_genres(s, separator=None) for s in meta[genre_col]] if genre_col else [()] * len(ids)
        items = _items_frame(ids, list(titles), list(years), genres, [()] * len(ids))
    else:
        items = _items_frame([], [], [], [], [])
    return Dataset.build(inter_path.stem, inter, items)


def load_dat(folder: Path) -> Dataset:
    """MovieLens .dat (ML-1M, ML-10M): ratings.dat 'user::item::rating::time' + movies.dat 'item::title::a|b'."""
    folder = Path(folder)
    ratings_path, movies_path = folder / "ratings.dat", folder / "movies.dat"
    text = _require_separator(ratings_path, "::", "'::' (user::item::rating::timestamp)")
    frame = _read_table(ratings_path, names=["user", "item", "rating", "timestamp"], text=text.replace("::", "\t"))
    source = _Source(ratings_path, header=0)
    inter = _interactions(frame, source, "user", "item")
    ids, titles, genres = [], [], []
    if _has_content(movies_path):
        for number, line in enumerate(_read_text(movies_path).splitlines(), start=1):
            if not line.strip():
                continue
            parts = line.split("::")
            if len(parts) != 3:
                raise DataFormatError(movies_path, number, "3 fields 'id::title::genre|genre'",
                                      fields(len(parts)))
            ids.append(parts[0].strip()); titles.append(parts[1])
            genres.append(_genres(parts[2]))
    tags = None
    if _has_content(folder / "tags.dat"):
        text = _read_text(folder / "tags.dat").replace("::", "\t")
        tags = _read_table(folder / "tags.dat", names=["user", "item", "tag", "timestamp"], text=text)
    top = _top_tags(tags)
    items = _items_frame(ids, titles, [""] * len(ids), genres, [top.get(i, ()) for i in ids])
    return Dataset.build(folder.name, inter, items)


# u.item's genre flags, in order, when no u.genre names them
GROUPLENS_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
                    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
                    "War", "Western")


def grouplens_genre_names(path: Path) -> tuple[str, ...]:
    """u.genre's 'name|index' lines: the genre each of u.item's flags stands for, by the index the line gives
    (not by the line's place in the file)."""
    named = {}
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        name, _, index = line.rpartition("|")
        if not name.strip() or not re.fullmatch(r"[0-9]+", index.strip()):
            raise DataFormatError(path, number, "'genre name|flag index'", repr(line.strip()[:60]))
        if int(index) in named:
            raise DataFormatError(path, number, "one genre per flag index", f"index {int(index)} again")
        named[int(index)] = name.strip()
    if sorted(named) != list(range(len(named))):
        raise DataFormatError(path, None, f"flag indices 0 to {len(named) - 1}, one each", f"{sorted(named)}")
    return tuple(named[index] for index in range(len(named)))


def load_grouplens(folder: Path) -> Dataset:
    """ML-100K as GroupLens distributes it: u.data 'user<TAB>item<TAB>rating<TAB>time' + u.item
    'id|title|release date|video release date|URL|one 0/1 flag per genre' (the genres named by u.genre)."""
    folder = Path(folder)
    data_path, item_path, genre_path = folder / "u.data", folder / "u.item", folder / "u.genre"
    text = _require_separator(data_path, "\t", "tabs (user, item, rating, timestamp)")
    frame = _read_table(data_path, names=["user", "item", "rating", "timestamp"], text=text)
    source = _Source(data_path, header=0)
    inter = _interactions(frame, source, "user", "item")
    names = grouplens_genre_names(genre_path) if _has_content(genre_path) else GROUPLENS_GENRES
    ids, titles, years, genres = [], [], [], []
    if _has_content(item_path):
        for number, line in enumerate(_read_text(item_path).splitlines(), start=1):
            if not line.strip():
                continue
            parts = line.split("|")
            if len(parts) != 5 + len(names):
                raise DataFormatError(item_path, number, f"{5 + len(names)} fields 'id|title|release date|video "
                                      f"release date|URL|{len(names)} genre flags'", fields(len(parts)))
            flag = next((flag.strip() for flag in parts[5:] if flag.strip() not in ("0", "1")), None)
            if flag is not None:  # read as "no", it would drop a genre without a word
                raise DataFormatError(item_path, number, "genre flags of 0 or 1", repr(flag))
            ids.append(parts[0].strip()); titles.append(parts[1])
            release = re.search(r"(\d{4})\s*$", parts[2])
            years.append(release.group(1) if release else "")
            genres.append(tuple(name for name, flag in zip(names, parts[5:]) if flag.strip() == "1" and
                                name not in NO_GENRE))
    items = _items_frame(ids, titles, years, genres, [()] * len(ids))
    return Dataset.build(folder.name, inter, items)


def load_csv(folder: Path) -> Dataset:
    """MovieLens CSV (ml-latest, ML-20M/25M/32M): ratings.csv + movies.csv, optional tags.csv."""
    folder = Path(folder)
    ratings_path, movies_path, tags_path = folder / "ratings.csv", folder / "movies.csv", folder / "tags.csv"
    frame, source = _read_table(ratings_path, sep=",", quoting=csv.QUOTE_MINIMAL), _Source(ratings_path, ",")
    _require_columns(frame, ratings_path, ["userId", "movieId", "timestamp"])  # ratings are optional: implicit
    inter = _interactions(frame, source, "userId", "movieId")
    tags = None
    if _has_content(tags_path):
        raw = _read_table(tags_path, sep=",", quoting=csv.QUOTE_MINIMAL)
        _require_columns(raw, tags_path, ["userId", "movieId", "tag"])
        tags = pd.DataFrame({"item": raw["movieId"].str.strip(), "tag": raw["tag"]})
    top = _top_tags(tags)
    if _has_content(movies_path):
        movies = _read_table(movies_path, sep=",", quoting=csv.QUOTE_MINIMAL)
        _require_columns(movies, movies_path, ["movieId", "title", "genres"])
        ids = list(_ids(movies, "movieId", _Source(movies_path, ",")))
        genres = [_genres(s) for s in movies["genres"]]
        items = _items_frame(ids, list(movies["title"]), [""] * len(ids), genres, [top.get(i, ()) for i in ids])
    else:
        items = _items_frame([], [], [], [], [])
    return Dataset.build(folder.name, inter, items)


def recbole_dataset_folder() -> Path:
    """The ML-100K atomic files shipped inside the recbole wheel (found without importing recbole)."""
    from core.assets import package_folder, pinned

    folder = package_folder("recbole", "the default dataset") / "dataset_example" / DEFAULT_DATASET
    if not (folder / f"{DEFAULT_DATASET}.inter").exists():
        raise SteerRecError(f"the recbole package has no {folder}/{DEFAULT_DATASET}.inter: "
                            f"reinstall {pinned('recbole')}")
    return folder


def load_dataset(path=None) -> Dataset:
    """The default dataset (None, or 'ml-100k' where no such folder is here), or a folder/file in any supported
    format; a Dataset already loaded is returned as it is."""
    if isinstance(path, Dataset):
        return path
    if path is None or (str(path) == DEFAULT_DATASET and not Path(path).exists()):
        return load_atomic(recbole_dataset_folder() / f"{DEFAULT_DATASET}.inter")
    dataset = load_path(Path(path))
    dataset.source = str(path)
    return dataset


COMPANION_FILES = {"movies.dat", "tags.dat", "u.item", "u.genre", "movies.csv", "tags.csv"}  # stand for their folder


def load_path(path: Path) -> Dataset:
    if not path.exists():
        raise SteerRecError(f"dataset path {path} does not exist")
    readers = {"ratings.dat": load_dat, "u.data": load_grouplens, "ratings.csv": load_csv}
    if path.is_file():
        if path.suffix in (".inter", ".item", ".user") and path.with_suffix(".inter").exists():
            return load_atomic(path.with_suffix(".inter"))
        if path.name in readers:  # a ratings file stands for its folder, in its own format
            return readers[path.name](path.parent)
        if path.name not in COMPANION_FILES:  # any other file would silently read whatever its folder holds
            raise SteerRecError(f"{path} is not a dataset file: pass ratings.dat, u.data, ratings.csv or NAME.inter, "
                                "or the folder that holds one")
    folder = path.parent if path.is_file() else path
    found = [name for name in readers if (folder / name).exists()] + sorted(p.name for p in folder.glob("*.inter"))
    if len(found) > 1:
        raise SteerRecError(f"several datasets in {folder}: {', '.join(found)}; pass the one to read as a file, "
                            f"e.g. {folder / found[0]}")
    if found:
        return readers[found[0]](folder) if found[0] in readers else load_atomic(folder / found[0])
    raise SteerRecError(f"no dataset found in {folder}: expected ratings.dat + movies.dat (MovieLens .dat), u.data "
                        "+ u.item (GroupLens's ML-100K), ratings.csv + movies.csv (MovieLens CSV) or one NAME.inter + "
                        "NAME.item (RecBole atomic)")
