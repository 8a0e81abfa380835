"""Where a training step's time goes: per layer and per stage, against the machine's float32 matmul peak.

For ``ConvAutoencoder(128, 1, d)`` at one batch size this times, with TensorFlow:

* every convolution layer alone, forward and forward + both gradients (the input's
  and the kernel's), as GFLOP/s and as a fraction of the peak measured in the same run;
* the stages of one ``train_on_batch`` step: the network's forward pass, its
  backward pass, the loss (SSIM or L2) forward and backward, and the rest
  (Adam's update, Keras' bookkeeping) as the difference to the whole step.

Medians of ``--repeats`` calls after warm-up.  Run ``python bench/step_profile.py``
(about a minute on a 2-core CPU); ``--help`` for the options.
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import ssimlib  # noqa: F401  (before Keras: sets TensorFlow's oneDNN and threading options)
from ssimlib.experiments.nanotwice import median_seconds  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from inference import cpu_model  # bench/inference.py
from peak import cpu_flags, matmul_gflops  # bench/peak.py

PATCH = 128


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latent", type=int, default=500, help="latent dimension d")
    parser.add_argument("--batch-size", type=int, default=32, help="patches per step (the Fig. 6 models: 32)")
    parser.add_argument("--loss", default="ssim", help="training loss (ssimlib.losses names)")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per measurement (median)")
    args = parser.parse_args()

    import keras
    import numpy as np
    import tensorflow as tf

    from ssimlib.losses import get_loss
    from ssimlib.models import ConvAutoencoder, forward_flops, leaf_layers
    from ssimlib.train import compile_autoencoder

    if keras.backend.backend() != "tensorflow":
        raise SystemExit("bench/step_profile.py times TensorFlow graphs; run it with KERAS_BACKEND=tensorflow")
    peak = matmul_gflops("float32")
    keras.utils.set_random_seed(0)
    model = compile_autoencoder(ConvAutoencoder(PATCH, 1, args.latent), args.loss)
    batch = np.random.default_rng(0).random((args.batch_size, PATCH, PATCH, 1), dtype=np.float32)
    x = tf.constant(batch)
    print(f"step profile, {time.strftime('%Y-%m-%d %H:%M')}: {cpu_model()}, {os.cpu_count()} cores, flags "
          f"{' '.join(cpu_flags()) or 'unknown'}; TensorFlow {tf.__version__}; ConvAutoencoder {PATCH} px, "
          f"d={args.latent}, batch {args.batch_size}, {args.loss} loss; float32 matmul peak {peak:.1f} GFLOP/s; "
          f"median of {args.repeats} calls\n")

    print("| layer | input -> output | GFLOP fwd | fwd ms | fwd % peak | fwd+bwd ms | fwd+bwd % peak |")
    print("|---|---|---:|---:|---:|---:|---:|")
    total_fwd = total_train = 0.0
    for layer in leaf_layers(model):
        if not isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)):
            continue
        inputs = tf.constant(np.random.default_rng(1).random((args.batch_size, *layer.input.shape[1:]), np.float32))
        flops = args.batch_size * forward_flops(keras.Sequential([keras.Input(layer.input.shape[1:]), layer]))
        forward = tf.function(lambda t, layer=layer: layer(t))

        @tf.function
        def train_like(t, layer=layer):
            with tf.GradientTape() as tape:
                tape.watch(t)
                y = tf.reduce_sum(layer(t))
            return tape.gradient(y, [t, *layer.trainable_variables])

        fwd = median_seconds(lambda: forward(inputs).numpy(), args.repeats)
        both = median_seconds(lambda: [g.numpy() for g in train_like(inputs)], args.repeats)
        total_fwd, total_train = total_fwd + fwd, total_train + both
        shapes = f"{'x'.join(map(str, layer.input.shape[1:]))} -> {'x'.join(map(str, layer.output.shape[1:]))}"
        print(f"| {layer.name} | {shapes} | {flops / 1e9:.3f} | {1e3 * fwd:.1f} | "
              f"{100 * flops / fwd / 1e9 / peak:.0f} | {1e3 * both:.1f} | {100 * 3 * flops / both / 1e9 / peak:.0f} |")
    flops = args.batch_size * forward_flops(model)
    print(f"| all convolutions, timed alone | | {flops / 1e9:.3f} | {1e3 * total_fwd:.1f} | "
          f"{100 * flops / total_fwd / 1e9 / peak:.0f} | {1e3 * total_train:.1f} | "
          f"{100 * 3 * flops / total_train / 1e9 / peak:.0f} |")

    loss_fn = get_loss(args.loss)
    forward = tf.function(lambda t: model(t, training=True))

    @tf.function
    def network_gradients(t):
        with tf.GradientTape() as tape:
            y = tf.reduce_sum(model(t, training=True))
        return tape.gradient(y, model.trainable_variables)

    target = tf.Variable(batch * 0.9)

    @tf.function
    def loss_gradients(t):
        with tf.GradientTape() as tape:
            value = tf.reduce_mean(loss_fn(t, target))
        return tape.gradient(value, target)

    stages = {
        "network forward": median_seconds(lambda: forward(x).numpy(), args.repeats),
        "network forward + backward": median_seconds(lambda: [g.numpy() for g in network_gradients(x)], args.repeats),
        f"{args.loss} loss forward + backward": median_seconds(lambda: loss_gradients(x).numpy(), args.repeats),
        "whole train_on_batch step": median_seconds(lambda: float(model.train_on_batch(batch, batch)), args.repeats),
    }
    rest = (stages["whole train_on_batch step"] - stages["network forward + backward"]
            - stages[f"{args.loss} loss forward + backward"])
    print("\n| stage of one training step | ms | share of the step | % of fp32 peak |")
    print("|---|---:|---:|---:|")
    step = stages["whole train_on_batch step"]
    for name, seconds in stages.items():
        work = {"network forward": flops, "network forward + backward": 3 * flops,
                "whole train_on_batch step": 3 * flops}.get(name)
        share = "" if name.startswith("whole") else f"{100 * seconds / step:.0f} %"
        fraction = f"{100 * work / seconds / 1e9 / peak:.0f}" if work else ""
        print(f"| {name} | {1e3 * seconds:.1f} | {share} | {fraction} |")
    print(f"| rest: Adam's update and Keras' bookkeeping (the difference) | {1e3 * rest:.1f} | "
          f"{100 * rest / step:.0f} % | |")
    print(f"\nratio network forward + backward / whole step: {stages['network forward + backward'] / step:.2f}")


if __name__ == "__main__":
    main()
