"""`edgeq calib`: the command line of the calibration-data builder."""

from __future__ import annotations

from pathlib import Path

import click

from edgeq.calibdata.audio import AudioOptions
from edgeq.calibdata.build import CalibRequest, build_calibration
from edgeq.calibdata.images import ImageOptions
from edgeq.calibdata.tables import TableOptions
from edgeq.calibdata.text import TextOptions
from edgeq.errors import InputError
from edgeq.progress import Progress


def _numbers(value: str | None, option: str, kind: type = float) -> tuple | None:
    """`0.485,0.456,0.406` → a tuple of numbers (None when the option is not given)."""
    if value is None:
        return None
    try:
        return tuple(kind(part) for part in value.split(","))
    except ValueError:
        raise InputError(f"{option} takes comma-separated numbers, got {value!r}") from None


@click.command("calib")
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--model",
    "model",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The ONNX model: arrays are named after its inputs and checked against them.",
)
@click.option(
    "-o", "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="The .npz to write."
)
@click.option(
    "--kind",
    type=click.Choice(["images", "table", "audio", "text"]),
    help="Kind of data (default: from the file suffixes).",
)
@click.option("--input", "input_name", help="Model input to fill, when the model has several.")
@click.option(
    "--samples",
    type=click.IntRange(min=1),
    default=512,
    show_default=True,
    help="Samples drawn (seeded); a compile holds half out for evaluation.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sample.")
@click.option("--force", is_flag=True, help="Overwrite OUT.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("--size", type=click.IntRange(min=1), help="Images: shorter side after resizing.")
@click.option("--crop", help="Images: centre crop H,W (default: the model input's).")
@click.option("--layout", type=click.Choice(["nchw", "nhwc"]), help="Images: default from the model input.")
@click.option("--channels", type=click.Choice(["rgb", "bgr", "gray"]), help="Images: default from the input.")
@click.option("--scale", type=float, default=255.0, show_default=True, help="Images: pixels divided by this.")
@click.option("--mean", help="Images: per-channel mean subtracted after scaling, e.g. 0.485,0.456,0.406.")
@click.option("--std", help="Images: per-channel std divided by, e.g. 0.229,0.224,0.225.")
@click.option("--labels", is_flag=True, help="Images: each parent folder is a class, saved as `labels`.")
@click.option("--columns", help="CSV: input columns, comma-separated (default: all but --label-column).")
@click.option("--label-column", help="CSV: column saved as `labels` (class names become sorted ids).")
@click.option(
    "--sample-rate",
    type=click.IntRange(min=1),
    default=16000,
    show_default=True,
    help="Audio: clips are resampled to this rate.",
)
@click.option(
    "--seconds",
    type=click.FloatRange(min=0, min_open=True),
    help="Audio: clip length (cut or padded; default: the model input's time axis).",
)
@click.option(
    "--features",
    type=click.Choice(["waveform", "logmel"]),
    default="waveform",
    show_default=True,
    help="Audio: raw waveform or log-mel energies.",
)
@click.option("--n-mels", type=click.IntRange(min=1), default=64, show_default=True, help="Audio: mel bands.")
@click.option("--n-fft", type=click.IntRange(min=2), default=400, show_default=True, help="Audio: FFT size.")
@click.option("--hop", type=click.IntRange(min=1), default=160, show_default=True, help="Audio: hop length.")
@click.option(
    "--tokenizer",
    type=click.Path(file_okay=False, path_type=Path),
    help="Text: a local Hugging Face tokenizer folder (needs `pip install 'edgeq[text]'`).",
)
@click.option(
    "--max-length",
    type=click.IntRange(min=1),
    help="Text: padded length (default: the model's fixed sequence length, else 128).",
)
@click.option("--field", default="text", show_default=True, help="Text: the JSONL field holding the text.")
def calib_command(sources, model, out, kind, input_name, samples, seed, force, quiet, **options) -> None:
    """Build a calibration .npz for --model from real data in SOURCES: a folder of images, CSV/NPY
    files, WAV clips, or text lines / JSONL (tokenized). A seeded sample is read, named after the
    model's inputs and checked against their dtypes and shapes (see calib/README.md).

    \b
    Examples:
      edgeq calib photos/ --model model.onnx -o calib.npz --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225
      edgeq calib points.csv --model tsp.onnx -o calib.npz
      edgeq calib clips/ --model kws.onnx -o calib.npz --features logmel --n-mels 40 --seconds 1
      edgeq calib notes.jsonl --model encoder.onnx -o calib.npz --tokenizer ./tokenizer --max-length 64
    """
    crop = _numbers(options["crop"], "--crop", int)
    images = ImageOptions(
        size=options["size"],
        crop=None if crop is None else (crop * 2 if len(crop) == 1 else crop[:2]),
        layout=options["layout"],
        channels=options["channels"],
        scale=options["scale"],
        mean=_numbers(options["mean"], "--mean") or (0.0,),
        std=_numbers(options["std"], "--std") or (1.0,),
    )
    request = CalibRequest(
        sources=list(sources),
        model=model,
        out=out,
        kind=kind,
        input=input_name,
        samples=samples,
        seed=seed,
        labels=options["labels"],
        force=force,
        images=images,
        table=TableOptions(
            tuple(filter(None, (options["columns"] or "").split(","))), options["label_column"]
        ),
        audio=AudioOptions(
            options["sample_rate"],
            options["seconds"],
            options["features"],
            options["n_mels"],
            options["n_fft"],
            options["hop"],
        ),
        text=TextOptions(options["tokenizer"], options["max_length"], options["field"]),
    )
    result = build_calibration(request, Progress(enabled=not quiet))
    arrays = ", ".join(f"{name} {dtype} {list(shape)}" for name, (dtype, shape) in result.arrays.items())
    click.echo(
        f"wrote {result.out}: {arrays} "
        f"({result.drawn} of {result.available} {result.kind} samples, seed {seed})"
    )
    click.echo(
        f"next: edgeq compile {model} --calib {result.out} -o out/ (or `calib: {result.out}` in a recipe)"
    )
