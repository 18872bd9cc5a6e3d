"""The `fovea` command line. Each command is a thin shell over the library; errors print one line."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.table import Table

from fovea.errors import FoveaError

app = typer.Typer(
    help="Fovea: predict with ONNX weights and their model cards, serve them, and run the platform.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
zoo_app = typer.Typer(help="The demo zoo: real models and data built offline from installed packages.")
app.add_typer(zoo_app, name="zoo")
err = Console(stderr=True, soft_wrap=True)

# Every command that reads Fovea's folder takes --home; every command that writes a result takes -o/--out.
HomeOption = Annotated[Path | None, typer.Option(help="Fovea's folder (default: $FOVEA_HOME or ~/.fovea).")]
ZooOption = Annotated[Path | None, typer.Option("--zoo", help="Zoo folder (default: the zoo in Fovea's folder).")]


def use_home(home: Path | None) -> None:
    """Point what this command reads from Fovea's folder (settings, the zoo) at `home`."""
    if home is not None:
        os.environ["FOVEA_HOME"] = str(home.expanduser())


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".dcm", ".nii", ".gz"}


def friendly_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn expected failures into one line on stderr and exit code 2, never a traceback."""

    @wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (FoveaError, OSError, ValueError) as exc:
            # Escaped: messages quote commands and input (`pip install 'fovea[train]'`) that Rich would eat as markup.
            err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2)

    return run


def parse_settings(pairs: list[str]) -> dict[str, Any]:
    """`key=value` pairs; values are read as YAML scalars or lists (0.5, 10, [cat, dog], null)."""
    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {pair!r}")
        settings[key.strip()] = yaml.safe_load(value)
    return settings


def expand_inputs(inputs: list[Path]) -> list[Path]:
    """Files as given; directories expanded to the images they hold, sorted."""
    found: list[Path] = []
    for item in inputs:
        if item.is_dir():
            found += sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif item.is_file():
            found.append(item)
        else:
            raise ValueError(f"input not found: {item}")
    if not found:
        raise ValueError("no images found in the given inputs")
    return found


def resolve_model(model: str) -> Path:
    """A path to an ONNX file, or the name of a demo zoo model."""
    path = Path(model).expanduser()
    if path.is_file():
        return path
    from fovea.zoo import list_zoo

    for entry in list_zoo():
        if entry.name == model or entry.path.name == model:
            if not entry.built:
                raise ValueError(f"zoo model {model!r} is not built yet; run `fovea zoo build`")
            return entry.path
    raise ValueError(f"model not found: {model} (neither a file nor a demo zoo model)")


@contextmanager
def progress_bar(total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr for long work; silent for a single item."""
    if total <= 1:
        yield lambda n: None
        return
    columns = (BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress("[progress.description]{task.description}", *columns, console=err, transient=True) as bar:
        task = bar.add_task("predicting", total=total)
        yield lambda n: bar.advance(task, n)


@app.command()
@friendly_errors
def predict(
    model: Annotated[str, typer.Argument(help="ONNX weights file, or a demo zoo model name.")],
    inputs: Annotated[list[Path], typer.Argument(help="Images, DICOM or NIfTI files, or folders of them.")],
    format: Annotated[str, typer.Option("--format", "-f", help="json | aicoco | supervisely | coco")] = "json",
    draw: Annotated[Path | None, typer.Option(help="Write each input with its results drawn on it here.")] = None,
    set_: Annotated[list[str], typer.Option("--set", help="Inference setting key=value (repeatable).")] = [],  # noqa: B006
    batch_size: Annotated[int, typer.Option(min=1, max=256, help="Images per network run.")] = 8,
    card: Annotated[Path | None, typer.Option(help="A side-car model card overriding the embedded one.")] = None,
    output: Annotated[
        Path | None, typer.Option("--out", "-o", "--output", help="Write results here, not stdout.")
    ] = None,
) -> None:
    """Predict on images or volumes and print the results."""
    import fovea
    from fovea.core.formats import format_predictions

    settings = parse_settings(set_)
    net = fovea.load(resolve_model(model), card)
    paths = expand_inputs(inputs)
    volumes = [p for p in paths if p.name.lower().endswith((".nii", ".nii.gz"))]
    images = [p for p in paths if p not in volumes]
    predictions = []
    with progress_bar(len(paths)) as advance:
        predictions += net.predict_batch(images, settings, batch_size=batch_size, progress=advance)
        for volume in volumes:
            predictions.append(net.predict_volume(volume, settings))
            advance(1)
    ordered = images + volumes
    for prediction, path in zip(predictions, ordered, strict=True):
        prediction.source = path.name
    entries = [{"id": str(i), "index": i, "file_name": p.name} for i, p in enumerate(ordered)]
    result = format_predictions(predictions, format, net.card, images=entries)
    text = json.dumps(result, indent=2)
    if output:
        output.write_text(text + "\n")
    else:
        sys.stdout.write(text + "\n")
    if draw:
        write_drawings(draw, ordered, predictions, net.card)


def write_drawings(out_dir: Path, paths: list[Path], predictions: list[Any], card: Any) -> None:
    from fovea.core.io import Volume, read_input
    from fovea.core.viz import draw, draw_slice, save_image

    out_dir.mkdir(parents=True, exist_ok=True)
    for path, prediction in zip(paths, predictions, strict=True):
        item = read_input(path)
        stem = path.name.split(".")[0]
        if isinstance(item, Volume):
            middle = item.size[0] // 2
            rgb = draw_slice(item.slice_image(middle).pixels, prediction, middle, card.colors)
        else:
            rgb = draw(item.pixels, prediction, card.colors)
        save_image(out_dir / f"{stem}.png", rgb)
    err.print(f"drawings written to {out_dir}")


@app.command()
@friendly_errors
def export(
    factory: Annotated[
        str, typer.Argument(help="`package.module:function` returning a torch.nn.Module, or `timm:ARCH`.")
    ],
    card: Annotated[Path, typer.Option(help="Model card (.yaml or .json) to embed.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the ONNX file.")],
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="A state_dict file, or a Lightning .ckpt (its `state_dict`; `model.`-like prefixes go)."),
    ] = None,
    torchscript: Annotated[Path | None, typer.Option(help="Also write a TorchScript file here.")] = None,
    quantize: Annotated[Path | None, typer.Option(help="Also write a dynamic INT8 ONNX file here.")] = None,
) -> None:
    """Export a PyTorch module to ONNX with its card embedded, checked against ONNX Runtime.

    For `timm:ARCH`, the card's input preprocessing (size, mean, std, crop) comes from timm's data config
    wherever the card does not set it.
    """
    from fovea.core.card import ModelCard
    from fovea.core.export import build_module, quantize_dynamic, sample_input, timm_card, to_onnx, to_torchscript

    model_card = ModelCard.from_file(card)
    module = build_module(
        factory, num_classes=len(model_card.classes) or len(model_card.regressions), checkpoint=checkpoint
    )
    if factory.startswith("timm:"):
        model_card = timm_card(model_card, module)
        spec = model_card.input
        err.print(
            f"input from timm's data config and the card: {spec.size}, {spec.resize} (crop {spec.crop_pct:g}), "
            f"mean {spec.mean}, std {spec.std}",
            highlight=False,
        )
    sample = sample_input(model_card)
    path = to_onnx(module, sample, model_card, out)
    err.print(f"exported {path} (parity with PyTorch checked)")
    if torchscript:
        err.print(f"exported {to_torchscript(module, sample, torchscript)}")
    if quantize:
        report = quantize_dynamic(path, quantize)
        err.print(f"quantized {quantize}: {report}")


@app.command("serve-model")
@friendly_errors
def serve_model(
    model: Annotated[
        str,
        typer.Argument(
            help="ONNX weights file, a demo zoo model name, or a custom model class `package.module:ClassName` "
            "(a BaseInferenceModel subclass, imported from the current folder; served at /ping + /invocations)."
        ),
    ],
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8000,
    max_batch_size: Annotated[
        int, typer.Option(min=1, max=256, help="Most images one engine run batches from concurrent requests.")
    ] = 8,
    max_delay_ms: Annotated[float, typer.Option(min=0, max=1000, help="Longest wait for a batch to fill.")] = 2.0,
    workers: Annotated[
        int | None, typer.Option(min=1, max=256, help="Engine runs side by side under load (default: one per core).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Model name in URLs (default: the card's name).")] = None,
    card: Annotated[Path | None, typer.Option(help="A side-car model card overriding the embedded one.")] = None,
    set_: Annotated[list[str], typer.Option("--set", help="Default inference setting key=value.")] = [],  # noqa: B006
    media: Annotated[
        Path | None, typer.Option(help="Folder whose images and videos answer id-based calls (id = sorted position).")
    ] = None,
    allow_url_host: Annotated[
        list[str], typer.Option(help="Private host or network image URLs may point at (e.g. 10.0.0.0/8); repeatable.")
    ] = [],  # noqa: B006
    max_request_mb: Annotated[float, typer.Option(min=0.001, help="Largest request body, in MiB.")] = 64,
    max_files: Annotated[int, typer.Option(min=1, help="Most files in one request.")] = 1000,
    max_decoded_mb: Annotated[
        float | None,
        typer.Option(min=0.001, help="Largest decoded image or frame (w x h x samples), in MiB (default: 400 MB)."),
    ] = None,
) -> None:
    """Serve one model at the root: Supervisely, FLaVor /invocations and KServe V2 (tritonclient).

    A custom model class (`package.module:ClassName`) is served at FLaVor's /ping + /invocations, and through
    Supervisely and V2 (encoded images in) when it names its AiCOCO output strategy (`self.formatter` or `task`);
    of the options, --host, --port, --media, --max-request-mb, --max-files, --max-decoded-mb and --workers
    (default 1: requests one at a time) apply to it.
    """
    import uvicorn

    from fovea.server.memory import cap_malloc_arenas

    cap_malloc_arenas()  # before any thread starts

    import fovea
    from fovea.core.io import Limits
    from fovea.server.session_app import create_session_app
    from fovea.sessions.media import MediaFolder
    from fovea.sessions.session import ModelSession, SessionConfig

    limits = Limits(
        max_bytes=int(max_request_mb * 1024 * 1024),
        max_files=max_files,
        **({"max_decoded_bytes": int(max_decoded_mb * 1024 * 1024)} if max_decoded_mb else {}),
        allow_private_hosts=tuple(allow_url_host),
    )
    if ":" in model and not Path(model).expanduser().exists():
        from fovea.server.infer_app import InferAPP, load_model

        # More than one worker only for a thread-safe model: the user says so with --workers.
        infer_app = InferAPP(load_model(model), limits=limits, workers=workers or 1, media=media)
        err.print(f"serving {model} (custom model) on http://{host}:{port}", highlight=False)
        infer_app.run(host=host, port=port)
        return
    net = fovea.load(resolve_model(model), card)
    config = SessionConfig(max_batch_size=max_batch_size, max_delay_ms=max_delay_ms, workers=workers, limits=limits)
    folder = MediaFolder(media, limits) if media else None
    session = ModelSession(
        net,
        name=name,
        settings=parse_settings(set_),
        config=config,
        image_resolver=folder.image if folder else None,
        video_resolver=folder.video if folder else None,
    )
    err.print(f"serving {session.name} ({net.card.task}) on http://{host}:{port}", highlight=False)
    uvicorn.run(
        create_session_app(session),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
    )


@app.command(short_help="Run the platform: the back-end API and deployed sessions.")
@friendly_errors
def serve(
    home: HomeOption = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8000,
    demo: Annotated[
        bool, typer.Option(help="Build the demo zoo if missing and offer it as the public catalog.")
    ] = True,
) -> None:
    """Run the platform: the back-end API and deployed sessions, on SQLite in FOVEA_HOME by default
    (PostgreSQL via FOVEA_DATABASE_URL)."""
    import uvicorn

    from fovea.server.memory import cap_malloc_arenas

    cap_malloc_arenas()  # before any thread starts

    from fovea.platform.bootstrap import bootstrap, seed_demo
    from fovea.platform.config import PlatformSettings
    from fovea.server.backend.app import create_backend_app

    use_home(home)
    settings = PlatformSettings()
    db, generated = bootstrap(settings)
    if demo:
        from fovea.zoo import build_zoo

        zoo = settings.home / "zoo"
        build_zoo(zoo, progress=lambda message: err.print(message, highlight=False))
        seed_demo(settings, db, zoo)
    if generated:
        err.print(f"created user {settings.admin_username!r} with password: {generated}  (shown once)", highlight=False)
    err.print(f"Fovea back-end on http://{host}:{port}/backend/ (home {settings.home})", highlight=False)
    uvicorn.run(create_backend_app(settings, db), host=host, port=port, log_level="warning", access_log=False)


@app.command(short_help="Run a Celery worker for the platform's processes.")
@friendly_errors
def worker(
    concurrency: Annotated[int, typer.Option(min=1, help="Jobs this worker runs at once.")] = 1,
    broker: Annotated[str | None, typer.Option(help="Broker URL (default: FOVEA_BROKER_URL or local Redis).")] = None,
) -> None:
    """Run a Celery worker for processes (set FOVEA_EXECUTOR=celery on the server); it needs the same
    database and storage folder as the server."""
    from fovea.jobs.celery_app import app as celery_app

    if broker:
        celery_app.conf.broker_url = broker
    celery_app.worker_main(["worker", "--loglevel=INFO", f"--concurrency={concurrency}", "--pool=prefork"])


@app.command()
@friendly_errors
def evaluate(
    model: Annotated[str, typer.Argument(help="ONNX weights file, or a demo zoo model name.")],
    dataset: Annotated[Path, typer.Argument(help="DeepHealth dataset YAML (a detector: COCO instances JSON).")],
    split: Annotated[str, typer.Option(help="training | validation | test")] = "test",
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for metrics.json and the confusion matrix / PR curve PNG.")
    ] = Path("evaluation"),
    batch_size: Annotated[int, typer.Option(min=1, max=256, help="Images per network run.")] = 16,
    card: Annotated[Path | None, typer.Option(help="A side-car model card overriding the embedded one.")] = None,
) -> None:
    """Score a model on a labelled dataset split: a table here, metrics.json and a picture in --out."""
    import fovea
    from fovea import evaluate as evaluation

    net = fovea.load(resolve_model(model), card)
    columns = (BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress("[progress.description]{task.description}", *columns, console=err, transient=True) as bar:
        task = bar.add_task("evaluating", total=None)
        result = evaluation.evaluate(
            net,
            dataset,
            split,
            batch_size=batch_size,
            progress=lambda n: bar.advance(task, n),
            total=lambda n: bar.update(task, total=n),
        )
    table = Table("metric", "value", title=f"{result.model} on {result.dataset} ({result.split})")
    for name, value in evaluation.headline(result):
        table.add_row(name, f"{value:.4f}")
    console = Console()
    console.print(table)
    rows = [row for row in result.metrics.get("per_class", []) if len(row) > 2]
    if rows:
        keys = [key for key in rows[0] if key not in ("class", "pr_curve")]
        per_class = Table("class", *keys)
        for row in rows:
            per_class.add_row(row["class"], *(f"{row.get(k, float('nan')):.4g}" for k in keys))
        console.print(per_class)
    for path in evaluation.write_report(result, out):
        err.print(f"written: {path}", highlight=False)


@app.command()
@friendly_errors
def explain(
    model: Annotated[str, typer.Argument(help="A classification model: ONNX weights file, or a demo zoo model name.")],
    image: Annotated[Path, typer.Argument(help="The image to explain.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Heat map file (default: <image>.gradcam.png).")
    ] = None,
    class_name: Annotated[str | None, typer.Option("--class", help="Explain this class (default: the top).")] = None,
) -> None:
    """Grad-CAM: draw over the image where the evidence for the predicted class lies (needs fovea's `train` extra)."""
    import fovea
    from fovea.training.explain import grad_cam, save_overlay

    net = fovea.load(resolve_model(model))
    if class_name is not None and class_name not in net.card.class_names:
        raise ValueError(f"{class_name!r} is not a class of {net.card.name}")
    index = None if class_name is None else net.card.class_names.index(class_name)
    explanation = grad_cam(net, image, index)
    target = out or Path(f"{image.name.split('.')[0]}.gradcam.png")
    save_overlay(explanation, target)
    x, y = explanation.peak
    print(f"{explanation.class_name} ({explanation.score:.3f}): strongest evidence at x={x}, y={y}; drawn in {target}")


db_app = typer.Typer(help="The platform database.")
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
@friendly_errors
def db_upgrade(home: HomeOption = None) -> None:
    """Apply the database migrations (FOVEA_DATABASE_URL, or SQLite in FOVEA_HOME)."""
    from fovea.platform.bootstrap import upgrade
    from fovea.platform.config import PlatformSettings

    use_home(home)
    settings = PlatformSettings()
    settings.home.mkdir(parents=True, exist_ok=True)
    upgrade(settings.db_url)
    err.print("database is at the newest revision")


users_app = typer.Typer(help="Platform accounts.")
app.add_typer(users_app, name="users")


@users_app.command("create")
@friendly_errors
def users_create(
    username: Annotated[str, typer.Argument(help="The new account's username.")],
    email: Annotated[str, typer.Option(help="E-mail address.")] = "",
    staff: Annotated[bool, typer.Option(help="May write the global catalog (allowedProperties).")] = False,
    password: Annotated[
        str | None, typer.Option(help="Password (default: FOVEA_NEW_PASSWORD, else generated and printed once).")
    ] = None,
    home: HomeOption = None,
) -> None:
    """Create an account directly in the database (also when registration is switched off), under the username
    and password rules registration applies."""
    import secrets

    from fovea.platform.auth import normalize_username, now, password_problem, username_problem
    from fovea.platform.bootstrap import bootstrap
    from fovea.platform.config import PlatformSettings
    from fovea.platform.models import User
    from fovea.platform.security import hash_password

    generated = None
    username = normalize_username(username)
    password = password or os.environ.get("FOVEA_NEW_PASSWORD")
    if password is None:
        password = generated = secrets.token_urlsafe(12)
    if problem := password_problem(password, username, email):
        raise ValueError(problem)
    use_home(home)
    db, _ = bootstrap(PlatformSettings())
    with db.transaction() as session:
        if problem := username_problem(session, username):  # the rules registration applies
            raise ValueError(f"user {username!r}: {problem}")
        session.add(
            User(
                username=username, email=email, password_hash=hash_password(password), is_staff=staff, date_joined=now()
            )
        )
    err.print(f"created user {username!r}" + (f" with password: {generated}  (shown once)" if generated else ""))


@zoo_app.command("build")
@friendly_errors
def zoo_build(
    zoo: ZooOption = None,
    home: HomeOption = None,
    force: Annotated[bool, typer.Option(help="Rebuild what already exists.")] = False,
) -> None:
    """Build the demo models and the Digits dataset from installed packages (no downloads)."""
    from fovea.zoo import build_zoo

    use_home(home)
    entries = build_zoo(zoo, force=force, progress=lambda message: err.print(message, highlight=False))
    for entry in entries:
        err.print(f"[green]ready[/green] {entry.name}: {entry.path}", highlight=False)


@zoo_app.command("list")
@friendly_errors
def zoo_list(
    zoo: ZooOption = None,
    home: HomeOption = None,
) -> None:
    """Show the demo zoo and what is built."""
    from fovea.zoo import list_zoo

    use_home(home)
    rows = [(e.name, e.task, "yes" if e.built else "no", str(e.path)) for e in list_zoo(zoo)]
    console = Console()
    if not console.is_terminal:  # plain tab-separated lines for scripts and pipes
        for row in rows:
            print("\t".join(row))
        return
    table = Table("name", "task", "built", "path")
    for row in rows:
        table.add_row(*row)
    console.print(table)


@zoo_app.command("path")
@friendly_errors
def zoo_path(
    name: Annotated[str, typer.Argument(help="A zoo entry name, or a path inside the zoo folder.")],
    zoo: ZooOption = None,
    home: HomeOption = None,
) -> None:
    """Print the path of a zoo model, or of a file in the zoo folder (e.g. samples/chelsea.jpg)."""
    from fovea.zoo import list_zoo, zoo_dir

    use_home(home)
    for entry in list_zoo(zoo):
        if entry.name == name:
            print(entry.path)
            return
    candidate = zoo_dir(zoo) / name
    if not candidate.exists():
        raise ValueError(f"{name} is not in the zoo at {zoo_dir(zoo)}; run `fovea zoo build`")
    print(candidate)


if __name__ == "__main__":
    app()
