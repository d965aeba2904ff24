"""OCR engine choice: detection recall of burned-in text, and time per image.

Two sets: the burned-in strings of the sample corpus (answer key boxes), and a harder
synthetic set (small fonts, text over speckle, grey or coloured text, dark text on light
pages, 16-bit greyscale). A planted string counts as found when the engine's boxes,
padded as clean_pixels pads them, cover at least 90% of its box.

    .venv/bin/python bench/ocr_recall.py --workdir DIR [--engines tesseract,rapidocr]

Both engines are those pacsguard ships, with the settings clean_pixels uses.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image, ImageDraw, ImageFont

from pacsguard.deid.pixels import codec, ocr_rapid, ocr_tesseract
from pacsguard.deid.pixels.redact import PAD, Box

Engine = Callable[[np.ndarray], list[Box]]
FONTS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
)
WORDS = [
    "DUPONT JEAN",
    "Marie-Claire LEFEBVRE",
    "Née le 12/03/1956",
    "IPP 004518273",
    "CHU de Nantes",
    "Hôpital Saint-Louis",
    "SMITH^JOHN",
    "DOB 1961-07-23",
    "Acc: 20190312-0042",
    "Dr. Moreau",
    "Clinique du Parc",
    "Jean-Pierre GARNIER",
]


def tesseract_engine(image: np.ndarray) -> list[Box]:
    return [b.box for b in ocr_tesseract.find_text(image, min_conf=20.0)]


def rapidocr_engine() -> Engine | None:
    if not ocr_rapid.available():
        return None

    def run(image: np.ndarray) -> list[Box]:
        return [b.box for b in ocr_rapid.find_text(image, min_conf=0.0)]

    return run


def coverage(target: Box, found: list[Box]) -> float:
    x0, y0, x1, y1 = target
    mask = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    for fx0, fy0, fx1, fy1 in found:
        fx0, fy0, fx1, fy1 = fx0 - PAD, fy0 - PAD, fx1 + PAD, fy1 + PAD
        ax0, ay0, ax1, ay1 = max(x0, fx0), max(y0, fy0), min(x1, fx1), min(y1, fy1)
        if ax0 < ax1 and ay0 < ay1:
            mask[ay0 - y0 : ay1 - y0, ax0 - x0 : ax1 - x0] = True
    return float(mask.mean()) if mask.size else 1.0


def sample_cases(workdir: Path) -> list[tuple[np.ndarray, list[Box]]]:
    from pacsguard.sample import generate

    root = workdir / "sample"
    if not (root / "answer-key.json").exists():
        generate(root, seed=7, patients=4)
    key = json.loads((root / "answer-key.json").read_text())
    by_frame: dict[tuple[str, int], list[Box]] = {}
    for entry in key["burned_in"]:
        if entry["location"] != "pixels":
            continue
        for item in entry["boxes"]:
            by_frame.setdefault((entry["file"], item["frame"]), []).append(tuple(item["box"]))
    cases = []
    for (file, frame), boxes in sorted(by_frame.items()):
        frames = codec.decode(pydicom.dcmread(root / file)).array
        cases.append((frames[frame], boxes))
    return cases


def hard_cases(seed: int = 3, count: int = 16) -> list[tuple[np.ndarray, list[Box]]]:
    gen = np.random.default_rng(seed)
    cases = []
    for i in range(count):
        style = i % 4
        rows, cols = 384, 512
        if style == 3:  # light page, dark text (scanned document)
            base = np.full((rows, cols), 235, np.uint8) + gen.integers(0, 15, (rows, cols)).astype(
                np.uint8
            )
        else:  # speckle, partly bright
            base = np.clip(gen.gamma(2.0, 40.0, (rows, cols)), 0, 255).astype(np.uint8)
        mode = "RGB" if style == 1 else "L"
        image = Image.fromarray(np.stack([base] * 3, -1) if mode == "RGB" else base, mode)
        draw = ImageDraw.Draw(image)
        boxes: list[Box] = []
        y = 8
        for j in range(4):
            size = int(gen.integers(10, 17))
            face = ImageFont.truetype(FONTS[(i + j) % len(FONTS)], size)
            text = WORDS[(i * 4 + j) % len(WORDS)]
            x = int(gen.integers(4, 200))
            colour: int | tuple[int, int, int]
            if style == 1:
                colour = [(0, 255, 0), (0, 255, 255), (255, 255, 0), (255, 128, 0)][j]
            elif style == 3:
                colour = 20
            else:
                colour = 255 if style == 0 else 200
            draw.text((x, y), text, font=face, fill=colour)
            x0, y0, x1, y1 = draw.textbbox((x, y), text, font=face)
            boxes.append((int(x0), int(y0), int(x1) + 1, int(y1) + 1))
            y += size + int(gen.integers(30, 70))
        array = np.asarray(image)
        if style == 2:  # 12-bit greyscale: anatomy brighter than the text
            array = array.astype(np.uint16) * 16
            array[200:300, 300:480] = 4095
        cases.append((array, boxes))
    return cases


def measure(
    name: str, engine: Engine, cases: list[tuple[np.ndarray, list[Box]]]
) -> dict[str, float]:
    found = total = 0
    start = time.perf_counter()
    for image, boxes in cases:
        got = engine(image)
        total += len(boxes)
        found += sum(coverage(box, got) >= 0.9 for box in boxes)
    elapsed = time.perf_counter() - start
    return {
        "strings": total,
        "found": found,
        "recall": round(found / total, 3) if total else 1.0,
        "seconds_per_image": round(elapsed / max(1, len(cases)), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--engines", default="tesseract,rapidocr")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    sets = {"sample": sample_cases(args.workdir), "hard": hard_cases()}
    engines: dict[str, Engine | None] = {
        "tesseract": tesseract_engine,
        "rapidocr": rapidocr_engine() if "rapidocr" in args.engines else None,
    }
    results: dict[str, dict[str, object]] = {}
    for name in args.engines.split(","):
        engine = engines.get(name)
        if engine is None:
            results[name] = {"skipped": "not importable here"}
            continue
        results[name] = {label: measure(name, engine, cases) for label, cases in sets.items()}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
