import numpy as np
import pytest

from core.data import load_dataset
from core.errors import DataFormatError, SteerRecError
from tests.conftest import (GENRES, synthetic_interactions, synthetic_items, write_atomic, write_csv, write_dat,
                            write_grouplens)


def test_real_movielens_100k(real_dataset):
    assert real_dataset.name == "ml-100k"
    assert real_dataset.num_users == 943
    assert real_dataset.num_items == 1682
    assert sum(len(s) for s in real_dataset.sequences) == 100_000
    assert real_dataset.item_text(real_dataset.item_index(1)) == \
        "Toy Story (1995). Genres: Animation, Children's, Comedy"
    assert real_dataset.titles[real_dataset.item_index(64)] == "The Shawshank Redemption"


def test_real_sequences_sorted_stably_by_time_keeping_file_order(real_dataset):
    """Ties within a second keep the order of the .inter file, never an item-id order."""
    import pandas as pd

    from core.data import recbole_dataset_folder

    raw = pd.read_csv(recbole_dataset_folder() / "ml-100k.inter", sep="\t")
    raw.columns = ["user", "item", "rating", "time"]
    user = real_dataset.user_index(196)
    rows = raw[raw.user == 196].reset_index()
    expected = rows.sort_values(["time", "index"])["item"].astype(str).tolist()
    got = [real_dataset.item_ids[i] for i in real_dataset.sequences[user]]
    assert got == expected
    assert np.all(np.diff(real_dataset.timestamps[user]) >= 0)
    # ties are present and not ordered by item id
    ascending = descending = 0
    for u in range(1, real_dataset.num_users + 1):
        seq, time = real_dataset.sequences[u], real_dataset.timestamps[u]
        tied = time[1:] == time[:-1]
        ascending += int(np.sum(tied & (seq[1:] > seq[:-1])))
        descending += int(np.sum(tied & (seq[1:] < seq[:-1])))
    assert ascending > 1000 and descending > 1000


def test_leave_one_out(real_dataset):
    user = real_dataset.user_index("196")
    seq = real_dataset.sequences[user]
    history, target = real_dataset.split(user, "test")
    assert target == seq[-1] and list(history) == list(seq[:-1])
    history, target = real_dataset.split(user, "valid")
    assert target == seq[-2] and list(history) == list(seq[:-2])
    with pytest.raises(SteerRecError):
        real_dataset.split(user, "train")


@pytest.mark.parametrize("writer", ["atomic", "dat", "csv", "grouplens"])
def test_every_format_gives_the_same_sequences(tmp_path, writer):
    path = {"atomic": lambda: write_atomic(tmp_path / "a"), "dat": lambda: write_dat(tmp_path / "d"),
            "csv": lambda: write_csv(tmp_path / "c"),
            "grouplens": lambda: write_grouplens(tmp_path / "g", synthetic_interactions(), synthetic_items(),
                                                 ["unknown", *GENRES])}[writer]()
    dataset = load_dataset(path)
    assert dataset.num_users == 12 and dataset.num_items == 30
    rows = synthetic_interactions()
    first_user = [str(i) for u, i, _, _ in rows if u == 1]
    assert [dataset.item_ids[i] for i in dataset.sequences[dataset.user_index("1")]] == first_user
    item = dataset.item_index("3")
    assert dataset.years[item] == "1993"
    assert set(dataset.genres[item]) == {"Horror", "Action"}
    assert dataset.titles[item] == ("The Movie 3" if writer == "csv" else "Movie 3")


@pytest.mark.parametrize("writer, item_file", [("csv", "movies.csv"), ("dat", "movies.dat"),
                                               ("atomic", "tiny.item"), ("grouplens", "u.item")])
@pytest.mark.parametrize("content", [None, b"", b"\n \n"], ids=["missing", "empty", "blank"])
def test_ratings_without_an_item_file_load_with_a_warning(tmp_path, writer, item_file, content):
    path = {"csv": lambda: write_csv(tmp_path / "c", tags=False), "dat": lambda: write_dat(tmp_path / "d"),
            "atomic": lambda: write_atomic(tmp_path / "a"),
            "grouplens": lambda: write_grouplens(tmp_path / "g", synthetic_interactions(), synthetic_items(),
                                                 ["unknown", *GENRES])}[writer]()
    item_path = (path if path.is_dir() else path.parent) / item_file
    item_path.unlink() if content is None else item_path.write_bytes(content)  # as good as none
    with pytest.warns(UserWarning, match="no item file beside the ratings.*need genres"):
        dataset = load_dataset(path)
    assert dataset.titles[1] == f"Item {dataset.item_ids[1]}" and dataset.genres[1] == ()


def test_csv_tags_become_attributes(tmp_path):
    dataset = load_dataset(write_csv(tmp_path / "c"))
    item = dataset.item_index("1")
    assert dataset.tags[item] == ("dark", "twist ending")
    assert "Tags: dark, twist ending" in dataset.item_text(item)


def test_user_and_item_ids_accept_int_or_str(tiny_atomic):
    dataset = load_dataset(tiny_atomic)
    assert dataset.user_index(3) == dataset.user_index("3")
    with pytest.raises(SteerRecError, match="unknown user"):
        dataset.user_index(999)
    with pytest.raises(SteerRecError, match="unknown item"):
        dataset.item_index("abc")


def test_users_with_too_few_interactions_are_dropped(tmp_path):
    folder = tmp_path / "few"
    folder.mkdir()
    (folder / "few.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\n"
                                      "1\t1\t1\n1\t2\t2\n1\t3\t3\n2\t1\t1\n")
    with pytest.warns(UserWarning) as caught:
        dataset = load_dataset(folder / "few.inter")
    messages = " | ".join(str(w.message) for w in caught)
    assert "no item file" in messages and "1 of 2 users have fewer than 3 interactions and are left out" in messages
    assert dataset.num_users == 1 and dataset.num_items == 3
    assert dataset.titles[1] == "Item 1"
    with pytest.raises(SteerRecError, match="user '2' is in few's ratings but was left out: a user needs 3"):
        dataset.user_index(2)


def test_a_repeated_event_is_left_out_and_a_later_repeat_kept(tmp_path):
    inter = write_atomic(tmp_path / "a")
    lines = inter.read_text().splitlines()
    user, item, rating, time = lines[1].split("\t")
    inter.write_text("\n".join([*lines, lines[1], f"{user}\t{item}\t{rating}\t{float(time) + 10 ** 9}"]) + "\n")
    with pytest.warns(UserWarning, match="1 row repeats an earlier row's user, item and timestamp"):
        dataset = load_dataset(inter)
    sequence = [dataset.item_ids[i] for i in dataset.sequences[dataset.user_index(user)]]
    assert sequence.count(item) == 2 and sequence[-1] == item  # the event once, and the later repeat


def test_rated_items_missing_from_the_item_file_are_named(tmp_path):
    folder = write_csv(tmp_path / "c", tags=False)
    ratings = folder / "ratings.csv"
    ratings.write_text(ratings.read_text().replace(",3,", ",3.0,"))  # ids written as floats: never linked
    with pytest.warns(UserWarning, match=r"rated items are not in the item file \(e\.g\. '3\.0'\)"):
        dataset = load_dataset(folder)
    assert dataset.genres[dataset.item_index("3.0")] == ()


def test_utf8_and_latin1_movielens_files_both_read(tmp_path):
    for encoding in ("utf-8", "latin-1"):
        folder = write_dat(tmp_path / encoding)
        movies = folder / "movies.dat"
        movies.write_bytes(movies.read_text(encoding="latin-1").replace("Movie 3 ", "Amélie 3 ").encode(encoding))
        dataset = load_dataset(folder)
        assert dataset.titles[dataset.item_index("3")] == "Amélie 3"


def test_recbole_genres_split_on_spaces_or_bars(tmp_path):
    inter = write_atomic(tmp_path / "a")
    item_file = inter.with_suffix(".item")
    lines = item_file.read_text().splitlines()
    barred = [line.rsplit("\t", 1)[0] + "\t" + line.rsplit("\t", 1)[1].replace(" ", " | ") for line in lines[1:]]
    item_file.write_text("\n".join([lines[0], *barred]).replace("Action", "Science Fiction") + " | unknown\n")
    dataset = load_dataset(inter)
    assert set(dataset.genres[dataset.item_index("3")]) == {"Horror", "Science Fiction"}  # '|' keeps inner spaces
    assert all("unknown" not in genres for genres in dataset.genres)


def test_a_folder_with_two_formats_is_named_not_guessed(tmp_path):
    folder = write_csv(tmp_path / "both", tags=False)
    write_dat(folder)
    with pytest.raises(SteerRecError, match=r"several datasets in .*both: ratings\.dat, ratings\.csv; pass the one"):
        load_dataset(folder)
    assert load_dataset(folder / "ratings.csv").titles[1].startswith("The Movie")  # the file given decides
    assert load_dataset(folder / "ratings.dat").titles[1].startswith("Movie")


@pytest.mark.parametrize("name, text, found", [
    ("x.inter", "user_id:token,item_id:token,timestamp:float\n1,2,3\n", "separated by tabs"),
    ("ratings.csv", "userId;movieId;rating;timestamp\n1;2;3;4\n", "separated by commas"),
    ("ratings.dat", "\n1,2,3,4\n", r"line 2: expected fields separated by '::'"),
    ("u.data", "1 2 3 4\n", "separated by tabs"),
    ("movies.csv", "movieId;title;genres\n1;Usual Suspects, The (1995);Crime\n", "separated by commas"),
    ("x.inter", "user_id:token item_id:token timestamp:float\n1 2 3\n", "separated by tabs"),
    ("ratings.dat", "", "one interaction per line, found no rows"),
])
def test_a_file_with_another_separator_or_no_rows_says_so(tmp_path, name, text, found):
    write_csv(tmp_path, tags=False) if name == "movies.csv" else None  # the ratings it goes with
    (tmp_path / name).write_text(text)
    with pytest.raises(DataFormatError, match=found):
        load_dataset(tmp_path / name)


def test_a_file_that_is_no_dataset_file_is_refused_not_swapped_for_its_neighbour(tmp_path):
    folder = write_csv(tmp_path / "c", tags=False)
    (folder / "my_ratings.csv").write_text((folder / "ratings.csv").read_text())
    with pytest.raises(SteerRecError, match="my_ratings.csv is not a dataset file: pass ratings.dat, u.data"):
        load_dataset(folder / "my_ratings.csv")
    assert load_dataset(folder / "movies.csv").num_users == 12  # a companion file stands for its folder
    inter = write_atomic(tmp_path / "a")
    assert load_dataset(inter.with_suffix(".item")).name == "tiny"


def test_a_byte_order_mark_is_not_part_of_the_first_id(tmp_path):
    folder = write_dat(tmp_path / "d")
    movies = folder / "movies.dat"
    movies.write_bytes(b"\xef\xbb\xbf" + movies.read_bytes())
    dataset = load_dataset(folder)  # no unlisted-item warning: every id links
    assert dataset.titles[dataset.item_index("1")] == "Movie 1" and dataset.num_items == 30


def test_ratings_csv_without_ratings_is_implicit_data(tmp_path):
    folder = write_csv(tmp_path / "c", tags=False)
    ratings = folder / "ratings.csv"
    ratings.write_text("\n".join(",".join(f for k, f in enumerate(line.split(",")) if k != 2)
                                 for line in ratings.read_text().splitlines()) + "\n")
    dataset = load_dataset(folder)
    assert dataset.num_users == 12 and np.isnan(dataset.ratings[1]).all()


def test_malformed_atomic_file_names_file_and_line(tmp_path):
    inter = write_atomic(tmp_path / "bad")
    lines = inter.read_text().splitlines()
    lines[4] = lines[4].replace("\t", "\tnot-a-time\t", 1).rsplit("\t", 1)[0]
    lines[4] = "\t".join(lines[4].split("\t")[:3] + ["soon"])
    inter.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=r"tiny\.inter, line 5: expected a finite number in column 'timestamp'"):
        load_dataset(inter)


def test_blank_lines_before_the_header_count_in_the_line_named(tmp_path):
    inter = write_atomic(tmp_path / "bad")
    lines = ["", "  ", *inter.read_text().splitlines()]  # pandas skips the blank ones; the file's lines do not
    lines[6] = "\t".join(lines[6].split("\t")[:3] + ["soon"])
    inter.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=r"tiny\.inter, line 7: expected a finite number in column 'timestamp'"):
        load_dataset(inter)


def test_ragged_line_is_reported(tmp_path):
    folder = write_dat(tmp_path / "ml")
    text = (folder / "ratings.dat").read_text().splitlines()
    text[2] += "::extra"
    (folder / "ratings.dat").write_text("\n".join(text) + "\n")
    with pytest.raises(DataFormatError, match=r"ratings\.dat, line 3: expected 4 fields"):
        load_dataset(folder)


def test_a_short_line_is_reported_not_filled_with_blanks(tmp_path):
    folder = write_dat(tmp_path / "ml")
    text = (folder / "ratings.dat").read_text().splitlines()
    text[2] = "::".join(text[2].split("::")[:3])
    (folder / "ratings.dat").write_text("\n".join(text) + "\n")
    with pytest.raises(DataFormatError, match=r"ratings\.dat, line 3: expected 4 fields, found 3 fields"):
        load_dataset(folder)
    inter = write_atomic(tmp_path / "atomic")
    with open(inter.with_suffix(".item"), "a") as f:
        f.write("31\n")  # an item line without title, year or genres
    with pytest.raises(DataFormatError, match=r"tiny\.item, line 32: expected 4 fields, found 1 field$"):
        load_dataset(inter)


def test_a_blank_rating_is_no_error(tmp_path):
    """Every interaction is implicit: a missing rating is NaN, the interaction counts."""
    inter = write_atomic(tmp_path / "atomic")
    lines = inter.read_text().splitlines()
    lines[3] = "\t".join(field if column != 2 else "" for column, field in enumerate(lines[3].split("\t")))
    inter.write_text("\n".join(lines) + "\n")
    dataset = load_dataset(inter)
    assert sum(len(s) for s in dataset.sequences) == len(lines) - 1


def test_bad_movies_line_is_reported(tmp_path):
    folder = write_dat(tmp_path / "ml")
    with open(folder / "movies.dat", "a") as f:
        f.write("31::Broken title only\n")
    with pytest.raises(DataFormatError, match=r"movies\.dat, line 31: expected 3 fields"):
        load_dataset(folder)


def test_a_bad_grouplens_item_line_is_reported(tmp_path):
    folder = write_grouplens(tmp_path / "ml-100k", synthetic_interactions(), synthetic_items(), ["unknown", *GENRES])
    with open(folder / "u.item", "a", encoding="latin-1") as f:
        f.write("31|A title|01-Jan-1995|0|1\n")
    with pytest.raises(DataFormatError, match=r"u\.item, line 31: expected 11 fields .* found 5 fields"):
        load_dataset(folder)
    lines = (folder / "u.item").read_text(encoding="latin-1").splitlines()[:-1]
    lines[4] = lines[4][:-1] + "x"  # a genre flag that is neither 0 nor 1
    (folder / "u.item").write_text("\n".join(lines) + "\n", encoding="latin-1")
    with pytest.raises(DataFormatError, match=r"u\.item, line 5: expected genre flags of 0 or 1, found 'x'"):
        load_dataset(folder)


def test_grouplens_flags_follow_the_index_u_genre_gives(tmp_path):
    """u.genre names each flag by its index: the same lines in another order mean the same genres."""
    folder = write_grouplens(tmp_path / "ml-100k", synthetic_interactions(), synthetic_items(), ["unknown", *GENRES])
    lines = (folder / "u.genre").read_text().splitlines()
    (folder / "u.genre").write_text("\n".join(sorted(lines)) + "\n")  # Action|1 first, unknown|0 last
    dataset = load_dataset(folder)
    assert set(dataset.genres[dataset.item_index("3")]) == {"Horror", "Action"}
    (folder / "u.genre").write_text("\n".join(lines[:2] + ["Comedy"] + lines[3:]) + "\n")
    with pytest.raises(DataFormatError, match=r"u\.genre, line 3: expected 'genre name\|flag index', found 'Comedy'"):
        load_dataset(folder)
    (folder / "u.genre").write_text("\n".join(lines[:2] + ["Comedy|\u00b9"] + lines[3:]) + "\n")  # Latin-1's 0xB9
    with pytest.raises(DataFormatError, match=r"u\.genre, line 3: expected 'genre name\|flag index'"):
        load_dataset(folder)
    (folder / "u.genre").write_text("\n".join(lines[:-1] + ["Romance|9"]) + "\n")
    with pytest.raises(DataFormatError, match=r"u\.genre: expected flag indices 0 to 5, one each"):
        load_dataset(folder)


def test_recbole_conversion_columns_and_placeholders(tmp_path):
    """The .item columns RecBole's conversion tools write for ML-10M/20M (movie_name, type) are read, a
    '(no genres listed)' field is no genre at all, and an item file without titles or genres says so."""
    inter = write_atomic(tmp_path / "a")
    item_file = inter.with_suffix(".item")
    lines = item_file.read_text().splitlines()
    lines[0] = "item_id:token\tmovie_name:token_seq\trelease_year:token\ttype:token_seq"
    lines[3] = lines[3].rsplit("\t", 1)[0] + "\t(no genres listed)"
    item_file.write_text("\n".join(lines) + "\n")
    dataset = load_dataset(inter)
    assert dataset.titles[dataset.item_index("1")] == "Movie 1" and dataset.genres[dataset.item_index("1")]
    assert dataset.genres[dataset.item_index("3")] == ()
    item_file.write_text("\n".join(["item_id:token\tname:token_seq\tgenre:token_seq"]
                                   + [f"{i}\tMovie {i}\tDrama" for i in range(1, 31)]) + "\n")
    with pytest.warns(UserWarning, match=r"tiny\.item has no title column \(movie_title, movie_name, title\)"):
        dataset = load_dataset(inter)
    assert dataset.titles[1] == f"Item {dataset.item_ids[1]}" and dataset.genres[1] == ("Drama",)


def test_an_item_listed_twice_keeps_its_first_row_and_says_so(tmp_path):
    folder = write_csv(tmp_path / "c", tags=False)
    with open(folder / "movies.csv", "a") as f:
        f.write("3,Other Title (1999),Comedy\n")
    with pytest.warns(UserWarning, match=r"1 item id is listed more than once in the item file \(e\.g\. '3'\)"):
        dataset = load_dataset(folder)
    assert dataset.titles[dataset.item_index("3")] == "The Movie 3"


def test_grouplens_own_ml_100k_files_are_the_shipped_dataset(real_dataset, tmp_path):
    """The same ratings in GroupLens's layout give the very dataset the checkpoints were trained on (the same
    fingerprint), so the shipped checkpoints serve a u.data download as they are. The item texts agree but for
    what recbole's copy changed: item 267 is "unknown" in u.item and "unkonwn" there (written here as GroupLens
    has it), and item 1412 lost its "(V)" there (written here as recbole has it)."""
    from core.data import GROUPLENS_GENRES, recbole_dataset_folder

    folder = recbole_dataset_folder()
    rows = [line.split("\t") for line in (folder / "ml-100k.inter").read_text().splitlines()[1:]]
    items = [line.split("\t") for line in (folder / "ml-100k.item").read_text(encoding="utf-8").splitlines()[1:]]
    items = [("267", "unknown", "", []) if i == "267" else (i, title, year, genres.split())
             for i, title, year, genres in items]
    write_grouplens(tmp_path / "ml-100k", [(u, i, r, t) for u, i, r, t in rows], items, GROUPLENS_GENRES)
    dataset = load_dataset(tmp_path / "ml-100k" / "u.data")
    assert dataset.fingerprint == real_dataset.fingerprint and dataset.name == real_dataset.name
    differ = [item for item in range(1, dataset.num_items + 1)
              if dataset.item_text(item) != real_dataset.item_text(item)]
    assert [dataset.item_ids[item] for item in differ] == ["267"] and dataset.titles[differ[0]] == "unknown"
    assert dataset.genres == real_dataset.genres
    from core.engine import Engine

    served = Engine(data=tmp_path / "ml-100k", models=["sasrec"]).recommend("sasrec", user=196)
    assert served.items == Engine(models=["sasrec"]).recommend("sasrec", user=196).items


def test_missing_columns_are_reported(tmp_path):
    folder = write_csv(tmp_path / "c")
    (folder / "ratings.csv").write_text("user,item\n1,2\n")
    with pytest.raises(DataFormatError, match=r"ratings\.csv, line 1: expected columns userId"):
        load_dataset(folder)


def test_empty_and_unknown_inputs(tmp_path):
    with pytest.raises(SteerRecError, match="does not exist"):
        load_dataset(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SteerRecError, match="no dataset found"):
        load_dataset(tmp_path / "empty")
    (tmp_path / "empty" / "notes.txt").write_text("hi")
    with pytest.raises(SteerRecError, match="notes.txt is not a dataset file"):
        load_dataset(tmp_path / "empty" / "notes.txt")
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "e.inter").write_text("")
    with pytest.raises(DataFormatError, match="empty file"):
        load_dataset(tmp_path / "e" / "e.inter")


def test_binary_garbage_is_reported(tmp_path):
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "g.inter").write_bytes(b"user_id:token\titem_id:token\ttimestamp:float\n\xff\xfe\x00\x01\n")
    with pytest.raises(DataFormatError):
        load_dataset(tmp_path / "g" / "g.inter")


def test_fingerprint_is_stable_and_sensitive(tmp_path):
    a = load_dataset(write_atomic(tmp_path / "a"))
    b = load_dataset(write_atomic(tmp_path / "b"))
    c = load_dataset(write_atomic(tmp_path / "c", seed=1))
    assert a.fingerprint == b.fingerprint != c.fingerprint
    inter = write_atomic(tmp_path / "d")  # the same users and times, one rating's item another
    lines = inter.read_text().splitlines()
    user, item, rating, time = lines[5].split("\t")
    lines[5] = "\t".join([user, str(int(item) % 30 + 1), rating, time])
    inter.write_text("\n".join(lines) + "\n")
    assert load_dataset(inter).fingerprint != a.fingerprint


@pytest.mark.parametrize("name, header, good, bad, found", [
    ("ratings.csv", "userId,movieId,rating,timestamp\n", "1,2,3,4\n", "1,4,3,oops\n", "'oops'"),
    ("ratings.dat", "", "1::2::3::4\n", "1::4::3::oops\n", "'oops'"),
    ("x.inter", "user_id:token\titem_id:token\trating:float\ttimestamp:float\n", "1\t2\t3\t4\n", "1\t4\t3\toops\n",
     "'oops'"),
    ("x.inter", "user_id:token\titem_id:token\ttimestamp:float\n", "1\t2\t4\n", "\t\t\n",
     "an empty field"),  # tabs: a row
])
def test_errors_name_the_file_line_after_blank_lines(tmp_path, name, header, good, bad, found):
    """pandas skips blank (and space-only) lines; the line in the message is still the file's own."""
    (tmp_path / name).write_text(header + good + "\n  \n" + good + "\n" + bad)
    line = len((header + good + "\n  \n" + good + "\n").splitlines()) + 1
    with pytest.raises(DataFormatError, match=rf"{name}, line {line}: expected .*, found {found}"):
        load_dataset(tmp_path / name)


@pytest.mark.parametrize("name, header", [
    ("x.inter", "user_id:token\titem_id:token\tuser_id:float\ttimestamp:float\n"),
    ("x.inter", "user_id:token\titem_id:token\tuser_id:token\ttimestamp:float\n"),
    ("ratings.csv", "userId,movieId,userId,rating,timestamp\n"),
])
def test_a_repeated_column_is_reported(tmp_path, name, header):
    (tmp_path / name).write_text(header + "\t".join("1234") + "\n")
    with pytest.raises(DataFormatError, match=rf"{name}, line 1: expected distinct column names, found 'user_?[iI]d"):
        load_dataset(tmp_path / name)


@pytest.mark.parametrize("directory", ["ratings.dat", "movies.dat", "ratings.csv", "tags.csv"])
def test_a_directory_where_a_data_file_belongs(tmp_path, directory):
    folder = (write_dat if directory.endswith(".dat") else write_csv)(tmp_path / "ml")
    (folder / directory).unlink()
    (folder / directory).mkdir()
    with pytest.raises(SteerRecError, match=rf"{directory} cannot be read: Is a directory"):
        load_dataset(folder)


@pytest.mark.parametrize("stamp", ["inf", "-inf", "nan", "1e400", "Infinity"])
def test_non_finite_timestamps_are_rejected(tmp_path, stamp):
    inter = write_atomic(tmp_path / "t")
    with open(inter, "a") as f:
        f.write(f"1\t2\t3\t{stamp}\n")
    line = len(inter.read_text().splitlines())
    with pytest.raises(DataFormatError, match=rf"tiny\.inter, line {line}: expected a finite number in column "
                                              rf"'timestamp', found '{stamp}'"):
        load_dataset(inter)


def test_several_inter_files_are_named(tmp_path):
    write_atomic(tmp_path / "two", name="a")
    write_atomic(tmp_path / "two", name="b")
    with pytest.raises(SteerRecError, match=r"several datasets in .*two: a\.inter, b\.inter; pass the one to read"):
        load_dataset(tmp_path / "two")
    assert load_dataset(tmp_path / "two" / "b.inter").name == "b"


class CountingEncoder:
    """Stands in for MiniLM: a fixed vector per text, and a count of the texts it was asked to encode."""

    def __init__(self, fingerprint="enc-a"):
        self.fingerprint, self.encoded = fingerprint, 0

    def encode(self, texts):
        self.encoded += len(texts)
        return np.stack([np.random.default_rng(abs(hash(t)) % 2 ** 32).normal(size=384) for t in texts]).astype(
            np.float32)


def test_the_item_text_cache_is_used_only_while_texts_and_encoder_match(tiny_atomic, tmp_path, monkeypatch):
    import dataclasses

    from core.text import CACHE_FILE, item_text_embeddings

    monkeypatch.setenv("STEERREC_CACHE", str(tmp_path / "cache"))
    dataset, folder = load_dataset(tiny_atomic), tmp_path / "ck"
    encoder = CountingEncoder()
    built = item_text_embeddings(dataset, folder, encoder)
    assert encoder.encoded == dataset.num_items and (folder / CACHE_FILE).exists()
    assert np.array_equal(item_text_embeddings(dataset, folder, encoder), built) and encoder.encoded == dataset.num_items  # cached
    shipped = (folder / CACHE_FILE).read_bytes()
    other_encoder = CountingEncoder("enc-b")
    item_text_embeddings(dataset, folder, other_encoder)
    assert other_encoder.encoded == dataset.num_items  # another encoder: rebuilt, never the stale cache
    item_text_embeddings(dataset, folder, other_encoder)
    assert other_encoder.encoded == dataset.num_items  # ... and kept under cache/, keyed by its fingerprint
    third_encoder = CountingEncoder("enc-c")
    item_text_embeddings(dataset, folder, third_encoder)
    item_text_embeddings(dataset, folder, other_encoder)
    assert other_encoder.encoded == dataset.num_items  # a third encoder's cache sits beside, not over, enc-b's
    for changed in (dataclasses.replace(dataset, titles=[t + " II" for t in dataset.titles]),
                    dataclasses.replace(dataset, genres=[g + ("Western",) if g else g for g in dataset.genres])):
        encoder.encoded = 0
        item_text_embeddings(changed, folder, encoder)
        assert encoder.encoded == dataset.num_items  # other texts (titles or genres): rebuilt
    assert (folder / CACHE_FILE).read_bytes() == shipped  # the cache beside the checkpoints is never overwritten
    (folder / CACHE_FILE).write_bytes(b"not a safetensors file")
    encoder.encoded = 0
    assert np.array_equal(item_text_embeddings(dataset, folder, encoder), built) and encoder.encoded == dataset.num_items
    unwritable = tmp_path / "file-not-folder"
    unwritable.write_text("")
    assert np.array_equal(item_text_embeddings(dataset, unwritable / "ck", encoder), built)  # no cache, no error


@pytest.mark.parametrize("name, length", [("ml-1m", 200), ("ML-1M", 200), ("movielens-1m", 200), ("ml_1m", 200),
                                          ("ml-100k", 50), ("ml-10m", 50), ("my-data", 50)])
def test_ml_1m_reads_200_items_whatever_its_folder_is_called(tmp_path, name, length):
    assert load_dataset(write_dat(tmp_path / name)).default_max_len == length


def test_titles_keep_their_article_and_only_a_final_year():
    from core.data import _display_title

    assert _display_title("Appartement, L' (1996)") == ("L'Appartement", "1996")
    assert _display_title("The Year (2000) Remade (2010)") == ("The Year (2000) Remade", "2010")
    assert _display_title("Anna (1996) Remastered") == ("Anna (1996) Remastered", "")


def test_an_item_keeps_its_most_used_tags_up_to_the_limit(tmp_path):
    from core.data import TAGS_PER_ITEM

    folder = write_csv(tmp_path / "c", tags=False)
    names = [f"tag{n:02d}" for n in range(TAGS_PER_ITEM + 3)]
    rows = [f"{user},1,{name},1000" for rank, name in enumerate(names) for user in range(1, len(names) - rank + 2)]
    (folder / "tags.csv").write_text("\n".join(["userId,movieId,tag,timestamp", *rows]) + "\n")
    dataset = load_dataset(folder)
    assert dataset.tags[dataset.item_index("1")] == tuple(names[:TAGS_PER_ITEM])


def test_ids_with_spaces_around_them_match_the_item_file(tmp_path):
    folder = write_csv(tmp_path / "c", tags=False)
    header, *lines = (folder / "ratings.csv").read_text().splitlines()
    spaced = [",".join(f" {value}" if column < 2 else value for column, value in enumerate(line.split(",")))
              for line in lines]
    (folder / "ratings.csv").write_text("\n".join([header, *spaced]) + "\n")
    dataset = load_dataset(folder)
    assert " 1" not in dataset.item_ids and " 1" not in dataset.user_ids
    assert dataset.num_items == 30 and not any(title.startswith("Item ") for title in dataset.titles[1:])


def test_a_user_with_two_interactions_is_left_out(tmp_path):
    (tmp_path / "d.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\n"
                                      + "".join(f"1\t{i}\t{i}\n" for i in range(1, 6)) + "2\t1\t1\n2\t2\t2\n")
    with pytest.warns(UserWarning, match="fewer than 3"), pytest.warns(UserWarning, match="no item file"):
        dataset = load_dataset(tmp_path / "d.inter")
    assert dataset.dropped_users == frozenset({"2"}) and dataset.user_ids == ["<pad>", "1"]


def test_a_recbole_year_column_counts_only_where_it_holds_a_year(tmp_path):
    (tmp_path / "d.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\n1\t1\t1\n1\t2\t2\n1\t3\t3\n")
    (tmp_path / "d.item").write_text("item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
                                     "1\tHeat (1995)\t1995-12-15\tAction\n"  # not a year: the title's
                                     "2\tCasino (1995)\t1996\tDrama\n"  # the column's year comes first
                                     "3\tFargo\t1996\tCrime\n")
    dataset = load_dataset(tmp_path / "d.inter")
    assert {dataset.item_ids[i]: dataset.years[i] for i in range(1, 4)} == {"1": "1995", "2": "1996", "3": "1996"}
