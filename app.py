"""SteerRec in the browser: pick a user (or make up a history), say what you want and what you would rather
avoid, and compare the backbone, DPR and MixRec side by side.

This file is layout and wiring only. Every ranking, profile and explanation comes from `core.engine.Engine`,
so the app, the CLI and the benchmarks always agree. `compare`, `recommend` and `status` are the API endpoints
`/compare`, `/recommend` and `/status`.
"""
import os
import sys

PORT = os.environ.get("GRADIO_SERVER_PORT", "7860")
if not (PORT.isascii() and PORT.isdigit() and 0 < int(PORT) < 65536):  # Gradio's own import would fail on it
    sys.exit(f"error: GRADIO_SERVER_PORT must be a port number from 1 to 65535, got {PORT!r}")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
# Gradio's queue recomputes a pandas summary of its last 10,000 events after every event (for its monitoring
# page), 7% of the server's CPU under 32 clients and growing with the events kept: every 100, over the last 1,000
os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "100")
os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", "1000")

import functools  # noqa: E402
import html  # noqa: E402
import math  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import urllib.parse  # noqa: E402
from pathlib import Path  # noqa: E402

import gradio as gr  # noqa: E402
import pandas as pd  # noqa: E402
import plotly.graph_objects as go  # noqa: E402

from core import BACKBONE_NAMES, DISPLAY_NAMES, SERVED  # noqa: E402
from core.assets import ensure_assets  # noqa: E402
from core.engine import Engine, Recommendation, as_flag, best_reading, percent, readings, share_cores  # noqa: E402
from core.errors import SteerRecError, one_line_warnings  # noqa: E402
from core.prompts import MAX_PROMPT_CHARS  # noqa: E402

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "benchmarks" / "results"
SPACE = os.environ.get("SPACE_ID") is not None
CONCURRENT_REQUESTS = 2  # the queue runs this many model requests at once, each on its share of the cores
MODEL_REQUESTS = {"concurrency_id": "models"}  # every event that runs models counts against that one limit
# Gradio's default theme, less the semi-bold face it ships, which holds only a few letters (bold text came out
# in mixed shapes): bold text takes the full bold face instead
THEME = gr.themes.Default(font=(gr.themes.LocalFont("Source Sans Pro", weights=(400, 700)), "ui-sans-serif",
                                "system-ui", "sans-serif"))
COLUMNS = ("backbone", "dpr", "mixrec")
DATASET_USER, MADE_UP = "Dataset user", "Build a history"
RANKING_WIDTHS = {"#": 6, "fit": 10, "title": 26, "year": 12, "genres": 27, "score": 19}  # % of the table's width
TITLE_MATCHES = 20  # the search box lists at most this many titles
# what formats text within a line (emphasis, code, links) or turns it into a link by itself (a URL, www., an e-mail)
MARKDOWN_SYNTAX = re.compile(r"[\\`*_\[\]~@]|:(?=//)|(?<=[wW]{3})\.")
TINTS = {"✓": "background-color: #e3f6e3", "⚠": "background-color: #fde2e1", "✓⚠": "background-color: #fff3cd"}
HISTORY_WIDTHS = {"title": 32, "year": 10, "genres": 24, "date": 20, "rating": 14}  # % of the table's width
WHY_HEADERS = ["reason", "detail", "similarity"]
WHY_LABEL = "Why is it there? Select a row of a list"
TABLES = ("history", *(f"{column}-table" for column in COLUMNS), "why")
# below a phone's width a table keeps the room its columns need and scrolls sideways, instead of breaking every
# word and number into pieces (the column widths are shares of the table's width)
CSS = ("@media (max-width: 640px) { "
       + ", ".join(f"#{table}" for table in TABLES) + " { overflow-x: auto; } "
       + ", ".join(f"#{table} .table-container" for table in TABLES) + " { min-width: 560px; } }")
LAUNCH_STYLE = {"theme": THEME, "css": CSS}  # what launch() takes for the page's look
RESULT_COUNT = 2 * len(COLUMNS) + 6  # compare_view's outputs: a header and a table per column, 3 plots, state,
# the explanation and the notice line
EXAMPLES = [
    ["something that makes me laugh", "horror"],
    ["space and aliens", "romance, musicals"],
    ["a mystery to solve", "war films"],
    ["animated films for the whole family", "scary movies"],
    ["gunslingers in the Wild West", ""],
    ["", "drama; comedy"],
]
ABOUT = """
## The three models

- **Backbone**: an ID-based next-item model trained on the users' rating sequences, SASRec (self-attention,
  Kang & McAuley 2018) or GRU4Rec (recurrent, Hidasi et al. 2016). It ignores the prompts: it is what the
  user would get without steering.
- **DPR**, Decoupled Promptable Recommendation ("Give Users the Wheel: Towards Promptable Recommendation
  Paradigm", arXiv 2602.18929): the backbone's user vector is shifted by a mixture of *want* and *avoid*
  experts, driven by a sentence embedding of each prompt, and the ranking stays a single inner-product search.
  With no prompt it returns exactly the backbone's ranking.
- **MixRec** ("Beyond Inter-Item Relations: Dynamic Adaptive Mixture-of-Experts for LLM-Based Sequential
  Recommendation", arXiv 2408.07427): a small frozen language model (SmolLM2-135M) reads the history as text,
  with the prompt placed in its context; a mixture of adapter experts on its item slots and the SASRec
  backbone's embeddings injected into it make the ranking. The shipped checkpoint was never trained on prompts
  (it reads them zero-shot), so they barely move its list: DPR is the model trained to follow them.

Neither paper publishes code and only their abstracts are public, so **DPR and MixRec here are our own
reconstructions from those abstracts**, not the authors' implementations.

**Reading the lists**: in the *fit* column, ✓ marks an item with the genre DPR read in one of your *want*
phrases, ⚠ an item with the genre it read in one of your *avoid* phrases (e.g. "something that makes me laugh"
reads as Comedy); a phrase DPR is unsure of ("Action? (only 14% sure)") marks nothing. Select a row of a list to
see why it is there. The gate chart shows, per prompt, which of DPR's experts it used and the attribute DPR read
in it. A *Note* under a column's title says how that model read the request.
A score only orders its own list: each model has its own scale (DPR's adds its steering terms, so it can be
negative and moves with the prompts), so scores are not compared across columns.
**Strict avoid** also removes from DPR's list every item of the genre read in each avoid phrase (not for a
reading DPR is unsure of, which only steers).
"""


@functools.cache
def get_engine() -> Engine:
    """One engine per process, loaded on first use so that importing this module stays cheap."""
    ensure_assets()  # on a Space: installs the asset packages once (see README); elsewhere only checks
    models = os.environ.get("STEERREC_MODELS")  # e.g. "sasrec,gru4rec,dpr" to serve without MixRec
    chosen = {"models": models} if models else {}
    # your own data (any format `--data` reads) and the folder of checkpoints trained on it
    return Engine(data=os.environ.get("STEERREC_DATA") or None,
                  checkpoints=os.environ.get("STEERREC_CHECKPOINTS") or None, **chosen)


def errors_as_messages(as_html: bool):
    """Turn the engine's SteerRecError into a gr.Error whose message a person can read: escaped for the page,
    which shows it as HTML, and as it is for an API client."""
    def decorate(handler):
        @functools.wraps(handler)
        def wrapper(*args, **kwargs):
            try:
                return handler(*args, **kwargs)
            except SteerRecError as error:
                message = html.escape(str(error), quote=False) if as_html else str(error)
                raise gr.Error(message, print_exception=False) from None  # the caller's mistake: no server traceback
        return wrapper
    return decorate


shows_errors = errors_as_messages(as_html=True)  # the page's handlers
api_errors = errors_as_messages(as_html=False)  # the API endpoints


def as_markdown_text(text: str) -> str:
    """A message or note that quotes what a person typed, for a gr.Markdown: a user id or prompt typed as `**x**`
    or `[a](b)` is neither bold nor a link, and HTML stays text (those Markdown boxes render no LaTeX either).
    Quoted text never starts a line (each message leads with its own words), so marks that act only there stay."""
    return MARKDOWN_SYNTAX.sub(r"\\\g<0>", html.escape(text, quote=False))


# ------------------------------------------------------------------------------------------ rankings

def source_of(mode: str, user, made_up: list[str]) -> dict:
    """The engine's keyword for who to recommend for: a dataset user, or the made-up history."""
    if mode == MADE_UP:
        return {"history": list(made_up or [])}  # the engine explains an empty history itself
    if user is None or not str(user).strip():
        raise SteerRecError("no user picked: choose a user id (or 'Build a history' for a made-up one)")
    return {"user": str(user).strip()}


def natural_order(ids: list[str]) -> list[str]:
    """Numeric ids in numeric order (then any others), so that typing "42" finds user 42 before 142 and 242."""
    return sorted(ids, key=lambda id_: (not id_.isdigit(), int(id_) if id_.isdigit() else 0, id_))


def model_of(column: str, backbone: str) -> str:
    return backbone if column == "backbone" else column


def rankings(source: dict, want: str, avoid: str, backbone: str, k, strict_avoid: bool = False) -> tuple:
    """(internal ids of the history, {column: its Recommendation, or why its model is unavailable})."""
    engine = get_engine()
    backbone = str(backbone).strip().lower()
    if backbone not in BACKBONE_NAMES:
        raise SteerRecError(f"unknown backbone {backbone[:20]!r}: expected one of {', '.join(BACKBONE_NAMES)}")
    strict_avoid = as_flag(strict_avoid, "strict_avoid")  # the DPR column's only, as the checkbox says
    _, history = engine.resolve(**source)  # a bad user or history is an error even if no model is available
    results = {}
    for column in COLUMNS:
        model = model_of(column, backbone)
        reason = engine.unavailable_reason(model, backbone)
        results[column] = reason or engine.recommend(model, want=want, avoid=avoid, k=k, backbone=backbone,
                                                      strict_avoid=strict_avoid and model == "dpr", **source)
    return history, results


def api_source(user, history) -> dict:
    """The engine's keyword for an API request: a dataset user, or a made-up history of item ids ("50, 172")."""
    if isinstance(history, (list, tuple)):  # a JSON list of ids, as well as the text "50, 172"
        history = ", ".join(str(item) for item in history)
    source = {key: str(value).strip() for key, value in (("user", user), ("history", history))
              if value is not None and str(value).strip()}
    if len(source) != 1:
        raise SteerRecError("give either a user id or a history of item ids (e.g. '50, 172, 133'), not both and "
                            "not neither")
    return source


@api_errors
def compare(user: str = "", want: str = "", avoid: str = "", backbone: str = "sasrec", k: int | None = None,
            strict_avoid: bool = False, history: str = "") -> tuple[dict, dict, dict]:
    """The rankings of the backbone, DPR and MixRec for a dataset user, or for a made-up history (item ids
    separated by commas, or a JSON list of them, with the user empty or left out); this is the API endpoint
    /compare.

    Want and avoid may each hold several phrases separated by commas, semicolons or new lines. Each of the three
    results has `available`, and either `items` (rank, item_id, title, year, genres, tags, score) or a `notice`.
    """
    _, results = rankings(api_source(user, history), want, avoid, backbone, k, strict_avoid)
    return tuple(as_json(column, results[column], backbone) for column in COLUMNS)


@api_errors
def recommend(model: str, user: str = "", want: str = "", avoid: str = "", backbone: str = "sasrec",
              k: int | None = None, strict_avoid: bool = False, history: str = "") -> dict:
    """One model's ranking for a dataset user or a made-up history (as in /compare); this is the API endpoint
    /recommend.

    `model` is sasrec, gru4rec, dpr or mixrec (`backbone` picks DPR's); the answer is the object that
    `python -m core recommend --json` prints."""
    return get_engine().recommend(model, want=want, avoid=avoid, k=k, backbone=backbone, strict_avoid=strict_avoid,
                                  **api_source(user, history)).to_dict()


def as_json(column: str, result, backbone: str) -> dict:
    if isinstance(result, Recommendation):
        return result.to_dict() | {"available": True, "notice": None}
    unanswered = Recommendation(model_of(column, str(backbone).lower()), None, [], [], [], latency_ms=0.0)
    return unanswered.to_dict() | {"latency_ms": None, "available": False, "notice": result}


# --------------------------------------------------------------------------- genre markers (presentation)

def fit_marker(attributes, wanted: set[str], avoided: set[str]) -> str:
    return ("✓" if wanted.intersection(attributes) else "") + ("⚠" if avoided.intersection(attributes) else "")


def steering_attributes(dpr_result) -> tuple[set[str], set[str]]:
    """The genres (or tags) DPR read in the want and avoid prompts (its likeliest reading of each, unless it is
    unsure), so the markers say what the gate chart says; nothing when DPR is not available."""
    read = readings(dpr_result.gates if isinstance(dpr_result, Recommendation) else [])
    return set(read["want"]), set(read["avoid"])


# ----------------------------------------------------------------------------------------------- tables

def ranking_table(result: Recommendation, wanted: set[str], avoided: set[str]):
    """A ranked list. Its fit column marks an item with a wanted genre (or tag) ✓ and one with an avoided one ⚠,
    and the row is tinted to match (green, red, or yellow for both); the title stays plain, so it sorts as text."""
    markers = [fit_marker(get_engine().attributes_of(item.item_id), wanted, avoided) for item in result.items]
    rows = [{"#": item.rank, "fit": marker, "title": item.title, "year": item.year, "genres": ", ".join(item.genres),
             "score": item.score} for item, marker in zip(result.items, markers)]
    frame = pd.DataFrame(rows, columns=list(shown_columns(RANKING_WIDTHS)))
    tints = [TINTS.get(marker, "") for marker in markers]
    return frame.style.apply(lambda column: tints, axis=0).format({"score": "{:.2f}"})


def shown_columns(widths: dict[str, int]) -> dict[str, int]:
    """A table's columns and their widths, less year and rating for data that has none (own data may lack both)."""
    data = get_engine().dataset
    present = {"year": data.has_years, "rating": data.has_ratings}
    return {header: width for header, width in widths.items() if present.get(header, True)}


def css_widths(widths: dict[str, int]) -> list[str]:
    total = sum(widths.values())
    return [f"{100 * width / total:.0f}%" for width in widths.values()]


def history_headers(made_up: bool = False) -> list[str]:
    """A made-up history has no dates or ratings, so its table leaves those columns out."""
    return [header for header in shown_columns(HISTORY_WIDTHS)
            if not (made_up and header in ("date", "rating"))]


def history_table(table: pd.DataFrame) -> gr.Dataframe:
    """The history table with the column widths of the columns it has."""
    return gr.Dataframe(table, column_widths=css_widths({header: HISTORY_WIDTHS[header] for header in table.columns}))


def history_view(mode: str, user, made_up: list[str]):
    """(profile line, history table newest first, genre chart) for the chosen user or the made-up history; for
    an id that is no user, the message in the profile line and an empty history."""
    try:
        return history_outputs(mode, user, made_up)
    except SteerRecError as error:
        message = as_markdown_text(str(error))
        return (f"⚠ {message}", pd.DataFrame(columns=history_headers(mode == MADE_UP)),
                message_figure("no history to show"))


def history_outputs(mode: str, user, made_up: list[str]):
    if mode == MADE_UP and not made_up:
        return ("made-up history: no titles yet", pd.DataFrame(columns=history_headers(made_up=True)),
                message_figure("add titles to see their genres"))
    if mode != MADE_UP and (user is None or not str(user).strip()):
        return "pick a user", pd.DataFrame(columns=history_headers()), message_figure("no user picked")
    engine, source, headers = get_engine(), source_of(mode, user, made_up), history_headers(mode == MADE_UP)
    rows = [[r[h] for h in headers] for r in engine.history_rows(**source)]
    chart = genre_figure({"history": engine.resolve(**source)[1]}, "Genres in the history")
    return (as_markdown_text(engine.profile(**source)), pd.DataFrame(rows[::-1], columns=headers),
            chart)


# ----------------------------------------------------------------------------------------------- plots

def message_figure(text: str, title: str = "") -> go.Figure:
    figure = go.Figure()
    figure.add_annotation(text=html.escape(text), showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    figure.update_layout(title=title, height=320, xaxis_visible=False, yaxis_visible=False,
                         margin=dict(l=20, r=20, t=50, b=20))
    return figure


def genre_figure(lists: dict[str, list[int]], title: str) -> go.Figure:
    """Share of each list's items that carry each genre, one bar per list, genres ordered by the first list."""
    engine = get_engine()
    counts = {name: engine.genre_counts(items) for name, items in lists.items()}
    genres = list(dict.fromkeys(g for c in counts.values() for g in c))
    if not genres:
        return message_figure("no genres: the items of this data carry none", title)
    figure = go.Figure([go.Bar(name=name, x=genres, y=[100 * counts[name].get(g, 0) / len(items) for g in genres])
                        for name, items in lists.items()])
    figure.update_layout(title=title, barmode="group", height=320, yaxis_title="% of items",
                         margin=dict(l=40, r=10, t=80, b=80),
                         # two entries a row at every width: a phone's narrow chart would wrap them over the title
                         legend=dict(orientation="h", x=-0.1, y=1.02, yanchor="bottom", entrywidth=0.5,
                                     entrywidthmode="fraction", font_size=11))
    return figure


def overlap_figure(item_lists: dict[str, list[str]]) -> go.Figure:
    """How many items each pair of lists shares (the diagonal is each list's length)."""
    names = list(item_lists)
    shared = [[len(set(item_lists[a]) & set(item_lists[b])) for b in names] for a in names]
    figure = go.Figure(go.Heatmap(z=shared, x=names, y=names, text=shared, texttemplate="%{text}",
                                  colorscale="Blues", showscale=False))
    figure.update_layout(title="Items the lists share", height=320, yaxis_autorange="reversed",
                         margin=dict(l=80, r=10, t=50, b=40))
    return figure


def gate_label(gate: dict) -> str:
    """'want: something that makes me la… → Comedy 91%': a prompt and the attribute DPR steers it by (the chart's
    legend has room for one; the command line and the JSON give the runners-up)."""
    prompt = gate["prompt"] if len(gate["prompt"]) <= 28 else gate["prompt"][:27] + "…"
    return f"{gate['polarity']}: {prompt} → {understood_as(gate)}"


def understood_as(gate: dict) -> str:
    """The attribute DPR steers a prompt by, with its reader's probability ('Comedy 91%'); 'Action? (only 14%
    sure)' when it barely prefers one."""
    name, probability = best_reading(gate)
    if name is None:
        return "nothing it knows"
    return f"{name}? (only {percent(probability)} sure)" if gate["unsure"] else f"{name} {percent(probability)}"


def gates_figure(result) -> go.Figure:
    """DPR's expert weights for each prompt: which want or avoid experts steer the user vector."""
    if not isinstance(result, Recommendation):
        return message_figure("DPR is not available", "DPR expert gates")
    if not result.gates:
        return message_figure("no prompt: DPR returns the backbone's ranking", "DPR expert gates")
    figure = go.Figure([go.Bar(name=html.escape(gate_label(gate)), x=list(gate["experts"]),
                               y=list(gate["experts"].values())) for gate in result.gates])
    # the legend is where each prompt's reading shows, so it stays with a single prompt too: one line per prompt
    # under the axis, the chart growing with them
    legend_height = 22 * len(result.gates)
    figure.update_layout(title="DPR expert gates<br><sup>a want mixes the want experts, an avoid the avoid ones</sup>",
                         barmode="group", height=300 + legend_height, yaxis_title="gate weight",
                         xaxis_title="expert", margin=dict(l=40, r=10, t=50, b=70 + legend_height), showlegend=True,
                         legend=dict(orientation="v", yref="container", y=0, yanchor="bottom", x=0, font_size=11))
    return figure


# ------------------------------------------------------------------------------------------- handlers

def column_title(column: str, backbone: str) -> str:
    name = DISPLAY_NAMES.get(backbone, backbone)
    return {"backbone": name, "dpr": f"DPR (over {name})", "mixrec": DISPLAY_NAMES["mixrec"]}[column]


def compare_view(mode, user, made_up, want, avoid, backbone, k, strict_avoid=False):
    """The Compare button: per column a header and a table (or a notice), then the three plots, the state that
    the row-selection explanation reads, the explanation and the notice line. A bad request empties them all and
    says why in the notice, so no list stays on screen for a request it does not answer."""
    try:
        return compared_outputs(mode, user, made_up, want, avoid, backbone, k, strict_avoid)
    except SteerRecError as error:
        return cleared_outputs(backbone, f"**Nothing to compare**: {as_markdown_text(str(error))}")


def ask_compare(mode, user, made_up, want, avoid, backbone, k, strict_avoid=False) -> dict:
    """The page's Compare, first step: compare_view's outputs, kept with the user or history and backbone they
    answer for. The page can change those while the models run."""
    return {"subject": subject_of(mode, user, made_up, backbone),
            "outputs": compare_view(mode, user, made_up, want, avoid, backbone, as_slider_shows(k), strict_avoid)}


def as_slider_shows(k):
    """The number box beside the k slider takes any number (2.5) while the slider's thumb snaps to a whole one
    (3): the page asks for the k that the thumb shows."""
    return math.floor(k + 0.5) if isinstance(k, float) and math.isfinite(k) else k


def shown_if_current(answer: dict | None, mode, user, made_up, backbone) -> tuple:
    """Second step: the outputs, unless the page's user, history or backbone changed meanwhile; that change has
    taken the old lists away, and these would land under the new subject. The answer is let go either way."""
    if answer is None or answer["subject"] != subject_of(mode, user, made_up, backbone):
        return *(gr.skip() for _ in range(RESULT_COUNT)), None
    return *answer["outputs"], None


def subject_of(mode, user, made_up, backbone) -> tuple:
    return (mode, tuple(made_up or ()) if mode == MADE_UP else str(user).strip(), backbone)


def cleared_outputs(backbone, notice: str) -> tuple:
    """compare_view's outputs with no lists: each column's title alone, placeholder plots, no state."""
    backbone = backbone if backbone in BACKBONE_NAMES else "sasrec"
    columns = [output for column in COLUMNS for output in (f"### {column_title(column, backbone)}",
                                                           gr.Dataframe(visible=False))]
    return (*columns, *placeholder_plots(), None, no_explanation(), notice)


def placeholder_plots() -> list[go.Figure]:
    return [message_figure("press Compare", title) for title in ("Genre mix", "Items the lists share",
                                                                 "DPR expert gates")]


def no_explanation() -> gr.Dataframe:
    """The explanation emptied, its title too: a title naming an item of the lists before would mislead."""
    return gr.Dataframe(value=None, label=WHY_LABEL)


def compared_outputs(mode, user, made_up, want, avoid, backbone, k, strict_avoid):
    source = source_of(mode, user, made_up)
    history, results = rankings(source, want, avoid, backbone, k, strict_avoid)
    wanted, avoided = steering_attributes(results["dpr"])
    outputs, lists = [], {"history": history}
    for column in COLUMNS:
        result, title = results[column], column_title(column, backbone)
        if isinstance(result, Recommendation):
            notes = "".join(f"\n\n*Note*: {as_markdown_text(note)}" for note in result.notes)
            count = f"{len(result.items)} {'item' if len(result.items) == 1 else 'items'}"
            outputs += [f"### {title}\n{count} in {result.latency_ms:.1f} ms{notes}",
                        gr.Dataframe(ranking_table(result, wanted, avoided), visible=True)]
            lists[title] = [get_engine().dataset.item_index(item.item_id) for item in result.items]
        else:
            outputs += [f"### {title}\n**Not available**: {html.escape(result, quote=False)}",
                        gr.Dataframe(visible=False)]
    ranked = {name: items for name, items in lists.items() if name != "history"}
    overlap = overlap_figure(ranked) if ranked else message_figure("no model is available", "Items the lists share")
    state = {"source": source, "backbone": backbone, "results": results}
    return (*outputs, genre_figure(lists, "Genre mix: history against each list"), overlap,
            gates_figure(results["dpr"]), state, no_explanation(), "")


def explain(last: dict | None, column: str, rank) -> gr.Dataframe:
    """Why an item is in a list: the history items closest to it, and its similarity to each prompt."""
    result = (last or {}).get("results", {}).get(column)
    if not isinstance(result, Recommendation):
        raise SteerRecError("press Compare first, then select a row of a list")
    item = result.items[int(rank) - 1]
    near = get_engine().nearest_history(item.item_id, model=result.model, backbone=last["backbone"], **last["source"])
    rows = [["you watched", label, round(similarity, 3)] for label, similarity in near]
    prompts = [("want", text) for text in result.want] + [("avoid", text) for text in result.avoid]
    rows += [[f"prompt ({polarity})", text, round(similarity, 3)]
             for (polarity, text), similarity in zip(prompts, item.prompt_similarity)]
    year = f" ({item.year})" if item.year else ""
    return gr.Dataframe(pd.DataFrame(rows, columns=WHY_HEADERS),
                        label=f"Why {item.title}{year} is #{item.rank} in {column_title(column, last['backbone'])}")


def on_select(column: str):
    """A select handler bound to one column's table."""
    @shows_errors
    def handler(last: dict | None, event: gr.SelectData):
        return explain(last, column, event.row_value[0])
    return handler


def new_subject(mode, user, made_up, backbone) -> tuple:
    """Another user or history: its profile and history, and the lists of the previous one taken away."""
    profile, table, chart = history_view(mode, user, made_up)
    return (profile, history_table(table), chart,
            *cleared_outputs(backbone, next_step(mode, user, made_up, profile)))


def next_step(mode, user, made_up: list[str], profile: str) -> str:
    """The notice under a new user or history: what to do next, unless its profile line says what is wrong or
    asks for a user."""
    if profile.startswith("⚠") or (mode != MADE_UP and not str(user or "").strip()):
        return ""
    if mode == MADE_UP:
        return "Press **Compare** to rank for this history" if made_up else "Add a title or more, then **Compare**"
    return "Press **Compare** to rank for this user"


def show_source(mode, user, made_up, backbone):
    """Switching between a dataset user and a made-up history: show the matching controls and history."""
    return gr.Column(visible=mode != MADE_UP), gr.Column(visible=mode == MADE_UP), *new_subject(
        mode, user, made_up, backbone)


def new_visit() -> int:
    """Where a visit's pseudo-random users start, so that each visitor gets a sequence of their own."""
    return random.randrange(2**32)


@shows_errors
def random_user(draws: int, current=None):
    """The next user of the visit's pseudo-random sequence (the same draws give the same user), never the one
    on the page: the button always changes the user."""
    others = [user for user in get_engine().dataset.user_ids[1:] if user != str(current or "").strip()]
    return random.Random(draws).choice(others), draws + 1


@shows_errors
def search(query: str):
    """Titles containing the query, for the made-up history."""
    if not (query or "").strip():
        return gr.Dropdown(choices=[], value=None, info="type part of a title")
    matches = get_engine().search_titles(query, limit=TITLE_MATCHES)
    if not matches:
        info = "no title contains this text"
    elif len(matches) == TITLE_MATCHES:
        info = f"the first {TITLE_MATCHES} matches: type more to narrow them"
    else:
        info = f"{len(matches)} {'match' if len(matches) == 1 else 'matches'}"
    return gr.Dropdown(choices=matches, value=matches[0][1] if matches else None, info=info)


@shows_errors
def add_title(made_up: list[str], item_id, query: str, backbone: str = "sasrec"):
    """Append the chosen title to the made-up history; with none chosen, or one already there, a warning that
    leaves all as it was."""
    unchanged = tuple(gr.skip() for _ in range(1 + 3 + RESULT_COUNT))  # the history, its 3 views, the results
    if not item_id:
        query = (query or "").strip()
        gr.Warning(f"no title contains {html.escape(query[:60], quote=False)!r}" if query
                   else "type part of a title, then pick one")
        return unchanged
    engine = get_engine()
    label = engine.item_label(engine.dataset.item_index(item_id))  # an unknown id is a clear error
    made_up = list(made_up or [])
    if str(item_id) in made_up:
        gr.Warning(f"{html.escape(label, quote=False)} is already in the history")
        return unchanged
    made_up.append(str(item_id))
    return made_up, *new_subject(MADE_UP, None, made_up, backbone)


def clear_history(backbone: str = "sasrec"):
    return [], *new_subject(MADE_UP, None, [], backbone)


# ---------------------------------------------------------------------------------------------- layout

def benchmark_tables() -> str:
    """Every Markdown table in benchmarks/results/, read once at start-up."""
    files = sorted(RESULTS.glob("*.md")) if RESULTS.is_dir() else []
    if not files:
        return "No benchmark tables have been generated yet (`make bench-full` writes them to benchmarks/results/)."
    tables = "\n\n".join(path.read_text(encoding="utf-8") for path in files)
    # a chart beside a table is named relative to its file; the app serves that folder as static files
    return re.sub(r"(!\[[^\]]*\]\()([\w.-]+\.png)\)",
                  lambda m: f"{m[1]}/gradio_api/file={urllib.parse.quote(str(RESULTS / m[2]))})", tables)


def data_line(engine: Engine) -> str:
    """Which data the app serves: ML-100K, or the STEERREC_DATA folder's name (a code span shows it as typed)."""
    data = engine.dataset
    name = "MovieLens-100K" if not data.source else "`" + data.name.replace("`", "'") + "`"
    own = " The benchmark tables below were measured on the shipped data, not on this." if data.source else ""
    return (f"The data is {name} ({data.num_users:,} users, {data.num_items:,} items): every interaction counts "
            f"(a rating of any value, or a plain event where the data has no ratings), ordered in time.{own}")


def backbone_choices(engine: Engine) -> list[tuple[str, str]]:
    """The backbones the engine has loaded, as (label, name); all of them when none is, so that choosing one says
    why it is missing."""
    loaded = [name for name in BACKBONE_NAMES if engine.is_available(name, name)]
    return [(DISPLAY_NAMES[name], name) for name in loaded or BACKBONE_NAMES]


def model_status(engine: Engine) -> str:
    """One line per model: loaded, or why not."""
    lines = []
    for model, backbone in SERVED:
        reason = engine.unavailable_reason(model, backbone)
        title = column_title("backbone" if model in BACKBONE_NAMES else model, backbone)
        state = f"not available: {html.escape(reason, quote=False)}" if reason else "loaded"
        lines.append(f"- **{title}**: {state}")
    return "\n".join(lines)


def status() -> dict:
    """What this server answers with; this is the API endpoint /status (a health check that costs nothing).

    `models` maps "model" or "dpr/<backbone>" to null when it is loaded, else to why it is not."""
    return get_engine().status()


def build_demo() -> gr.Blocks:
    engine = get_engine()
    gr.set_static_paths([RESULTS])  # the charts that the benchmark tables show
    first_user, backbones = engine.dataset.user_ids[1], backbone_choices(engine)
    profile, history, history_chart = history_view(DATASET_USER, first_user, [])
    with gr.Blocks(title="SteerRec", fill_width=True) as demo:
        gr.Markdown("# SteerRec\nPick a user, say what you want and what you would rather avoid, and compare an "
                    "ordinary sequential recommender with two promptable ones.")
        made_up, draws, last = gr.State([]), gr.State(0), gr.State(None)
        with gr.Tab("Recommend"):
            with gr.Row():
                with gr.Column(scale=2):
                    mode = gr.Radio([DATASET_USER, MADE_UP], value=DATASET_USER, label="Recommend for",
                                    elem_id="mode")
                    with gr.Column(visible=True) as user_group:
                        with gr.Row():
                            user = gr.Dropdown(natural_order(engine.dataset.user_ids[1:]), value=first_user,
                                               label="User id", filterable=True, allow_custom_value=True,
                                               elem_id="user", scale=3)
                            lucky = gr.Button("Random user", size="sm", elem_id="random-user", scale=1)
                    with gr.Column(visible=False) as build_group:
                        query = gr.Textbox(label="Search titles", placeholder="e.g. star", max_length=100,
                                           elem_id="title-search")
                        found = gr.Dropdown([], label="Matching titles", elem_id="title-results")
                        with gr.Row():
                            add = gr.Button("Add to history", size="sm", elem_id="add-title")
                            clear = gr.Button("Clear history", size="sm", elem_id="clear-history")
                    profile_box = gr.Markdown(profile, elem_id="profile", latex_delimiters=[])
                with gr.Column(scale=3):
                    history_box = gr.Dataframe(history, label="History, newest first", interactive=False,
                                                 wrap=True, max_height=320, elem_id="history",
                                                 column_widths=css_widths(shown_columns(HISTORY_WIDTHS)))
                with gr.Column(scale=2):
                    history_plot = gr.Plot(history_chart, label="Genre mix of the history", elem_id="history-genres")
            with gr.Row():
                want = gr.Textbox(label="Want", placeholder="something that makes me laugh", lines=2,
                                  max_length=MAX_PROMPT_CHARS, elem_id="want",
                                  info="one or more phrases, separated by commas or new lines; "
                                       "'comedies without romance' is a want and an avoid")
                avoid = gr.Textbox(label="Avoid", placeholder="horror", lines=2, max_length=MAX_PROMPT_CHARS,
                                   elem_id="avoid", info="what to leave out, e.g. 'horror, musicals'")
                with gr.Column():
                    backbone = gr.Radio(backbones, value=backbones[0][1], label="Backbone", elem_id="backbone")
                    most = min(50, engine.dataset.num_items)  # a small catalogue of your own holds fewer
                    k = gr.Slider(1, most, value=min(10, most), step=1, label="How many items (k)", elem_id="k")
                    strict = gr.Checkbox(False, label="Strict avoid (DPR)", elem_id="strict-avoid",
                                         info="also drop every item of the genre DPR read in an avoid phrase "
                                              "(unless it is unsure of it)")
                    run = gr.Button("Compare", variant="primary", elem_id="compare")
            with gr.Accordion("Example prompts", open=False):
                examples = gr.Examples(EXAMPLES, inputs=[want, avoid], label=None)
            notice = gr.Markdown(next_step(DATASET_USER, first_user, [], profile), elem_id="notice",
                                 latex_delimiters=[])
            headers, tables = [], []
            with gr.Row(equal_height=False):
                for column in COLUMNS:
                    with gr.Column(min_width=300):
                        headers.append(gr.Markdown(f"### {column_title(column, backbones[0][1])}",
                                                   elem_id=f"{column}-header", latex_delimiters=[]))
                        ranking_columns = shown_columns(RANKING_WIDTHS)
                        tables.append(gr.Dataframe(headers=list(ranking_columns), interactive=False, wrap=True,
                                                   column_widths=css_widths(ranking_columns), visible=False,
                                                   elem_id=f"{column}-table", show_label=False))
            # right under the lists, where the row that asks for it was selected
            why = gr.Dataframe(headers=WHY_HEADERS, label=WHY_LABEL, interactive=False, elem_id="why")
            with gr.Row():
                genre_chart, overlap_chart, gates_chart = placeholder_plots()
                # each at least a phone's width, so that on a phone they stack instead of squeezing three in a row
                genre_plot = gr.Plot(genre_chart, label="Genre mix", elem_id="genre-plot", min_width=340)
                overlap_plot = gr.Plot(overlap_chart, label="Overlap", elem_id="overlap-plot", min_width=340)
                gates_plot = gr.Plot(gates_chart, label="DPR gates", elem_id="gates-plot", min_width=340)
        with gr.Tab("About"):
            gr.Markdown(ABOUT + "\n" + data_line(engine))
            gr.Markdown("## Models loaded\n" + model_status(engine))
            with gr.Accordion("Benchmarks: every results table", open=False):
                gr.Markdown(benchmark_tables(), elem_id="benchmarks")

        private = {"api_visibility": "private"}
        results = ([item for pair in zip(headers, tables) for item in pair]
                   + [genre_plot, overlap_plot, gates_plot, last, why, notice])
        subject = [profile_box, history_box, history_plot, *results]  # what a new user or history changes
        mode.change(show_source, [mode, user, made_up, backbone], [user_group, build_group, *subject], **private)
        user.change(new_subject, [mode, user, made_up, backbone], subject, **private)
        backbone.change(new_subject, [mode, user, made_up, backbone], subject, **private)  # lists of the other one go
        demo.load(new_visit, None, draws, queue=False, **private)
        lucky.click(random_user, [draws, user], [user, draws], **private)
        query.change(search, query, found, trigger_mode="always_last", **private)
        add.click(add_title, [made_up, found, query, backbone], [made_up, *subject], **private)
        clear.click(clear_history, backbone, [made_up, *subject], **private)
        # a comparison is shown only if its user, history and backbone are still the ones on the page
        request, answer = [mode, user, made_up, want, avoid, backbone, k, strict], gr.State(None)
        showing = {"show_progress_on": [item for item in results if item is not last], **private}
        for trigger in (run.click, examples.load_input_event.then):  # the button, and an example: a request
            trigger(ask_compare, request, answer, **showing, **MODEL_REQUESTS).success(  # reads values only
                shown_if_current, [answer, mode, user, made_up, backbone], [*results, answer], queue=False, **private)
        for column, table in zip(COLUMNS, tables):
            table.select(on_select(column), last, why, **private)
        gr.api(compare, api_name="compare", **MODEL_REQUESTS)
        gr.api(recommend, api_name="recommend", **MODEL_REQUESTS)
        gr.api(status, api_name="status")
    demo.queue(default_concurrency_limit=CONCURRENT_REQUESTS, max_size=64)
    return demo


if __name__ == "__main__":
    one_line_warnings()
    try:
        demo = build_demo()
    except SteerRecError as error:
        sys.exit(f"error: {error}")
    share_cores(CONCURRENT_REQUESTS)  # after loading, which builds MixRec's item cache on every core
    demo.launch(server_name=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0" if SPACE else "127.0.0.1"),
                server_port=int(PORT), allowed_paths=[str(ROOT / "assets")],
                **LAUNCH_STYLE)
