import re
import subprocess
import sys
from pathlib import Path

from transformers import AutoTokenizer

from tests.conftest import tiny_model
from tts_prune import DEFAULT_MODEL
from tts_prune.cli import main
from tts_prune.models.embedded import embedded_model_dir

ROOT = Path(__file__).resolve().parents[1]


def test_info_prints_layers_of_a_local_model(tmp_path, capsys):
    tiny_model("qwen3").save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(embedded_model_dir(DEFAULT_MODEL)).save_pretrained(tmp_path)
    assert main(["info", "--model", str(tmp_path), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "3 blocks of Qwen3DecoderLayer" in out
    assert "self_attn.q_proj" in out and "mlp.down_proj" in out


def test_bad_model_exits_2_with_a_message(capsys):
    assert main(["info", "--model", "not-a-model"]) == 2
    assert "neither an embedded model" in capsys.readouterr().err


def test_make_help_lists_every_target_with_a_description():
    out = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    # rule lines look like "name: prerequisites"; variable assignments (":=", "?=") are not rules
    rule = re.compile(r"^([A-Za-z][\w-]*):(?!=)")
    declared = [m.group(1) for line in (ROOT / "Makefile").read_text().splitlines() if (m := rule.match(line))]
    assert "test" in declared and "study" in declared
    for target in declared:
        assert f"make {target}" in out, f"target {target!r} has no '## {target}: ...' line"
