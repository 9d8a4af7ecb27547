"""Convert SalGAN's published weights (gen_modelWeights0090.npz) to a Keras file.

Usage:
    python scripts/convert_salgan.py gen_modelWeights0090.npz salgan.weights.h5
    python scripts/convert_salgan.py gen_modelWeights0090.npz salgan.keras

``OUT.weights.h5`` loads with the estimator spec ``salgan:OUT.weights.h5``; ``OUT.keras``
holds the whole estimator and loads with ``keras:OUT.keras``. Neither needs the npz. The
npz is read with ``allow_pickle=False`` and every array's shape is checked.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("npz", help="the authors' gen_modelWeights0090.npz (54 arrays)")
    parser.add_argument("out", help="output path ending in .weights.h5 or .keras")
    args = parser.parse_args(argv)

    from sagim_tf.estimators.salgan import convert_salgan
    from sagim_tf.utils.errors import SagimError

    try:
        out = convert_salgan(args.npz, args.out)
    except SagimError as exc:
        print(f"convert_salgan: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out} (SalGAN generator, 54 arrays converted; decoder kernels flipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
