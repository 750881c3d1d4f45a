"""Convert cydonia999/VGGFace2-pytorch's resnet50_ft_weight.pkl (the VGGFace2 authors' resnet50_ft as numpy
arrays, the file SF2F loads) into the torch state_dict `--vggface2-weights` reads; only numpy arrays are
unpickled, and the layout is checked before the output is written.

    python scripts/convert_vggface2.py resnet50_ft_weight.pkl resnet50_ft.pt
"""

from __future__ import annotations

import sys

from w2p_eval.errors import InputError
from w2p_eval.judges.standard_nets import convert_vggface2_pickle


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python scripts/convert_vggface2.py resnet50_ft_weight.pkl resnet50_ft.pt", file=sys.stderr)
        return 2
    try:
        print(convert_vggface2_pickle(argv[0], argv[1]))
    except InputError as exc:
        print(f"convert_vggface2: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
