"""The MNIST figures of the image models, on the exact MNIST test set (10,000 images).

    python benchmarks/mnist_figures.py --data DIR [--conv-ae MODEL] [--vae2d MODEL]
        [--conv-vae MODEL] [--denoising MODEL] [--superres MODEL] [--threads 1]

DIR holds the MNIST IDX files; only the two t10k files are needed, and the training images
(if present) fit the PCA baseline of the latent comparison. `--conv-ae` and `--vae2d` default
to the bundled models; the other models are measured when given (a bundled name, a run folder
or a checkpoint folder). Every figure uses all test images with seed 0:

- conv AE: mean per-pixel binary cross-entropy on grey pixels (target <= 0.090);
- VAEs: negative ELBO in nats per image, Bernoulli likelihood on grey pixels, one posterior
  sample per image (targets: 2-d latent <= 140, 20-d conv VAE <= 100);
- denoising: mean PSNR of the output against that of the noisy input (the model's own noise);
- super-resolution: mean PSNR of the output against that of bicubic upsampling;
- 2-d embeddings: 5-nearest-neighbour label accuracy (leave-one-out on the test set) of the
  2-d VAE's latent means against PCA of the pixels.
"""

import argparse
import time

import torch

from musicvae_py.data.images import load_image_dataset, missing_mnist_files
from musicvae_py.image_inference import ImageModel, knn_accuracy, pca_2d


def row(figure: str, model: str, value: float, unit: str, target: str, met: bool | None) -> None:
    verdict = "" if met is None else ("yes" if met else "NO")
    print(f"{figure:<34} {model:<28} {value:>9.4f} {unit:<8} {target:<22} {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="Folder with the MNIST IDX files.")
    parser.add_argument("--conv-ae", default="mnist_conv_ae")
    parser.add_argument("--vae2d", default="mnist_vae2d")
    parser.add_argument("--conv-vae", default=None)
    parser.add_argument("--denoising", default=None)
    parser.add_argument("--superres", default=None)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()

    def load(spec: str):
        model = ImageModel.load(spec)
        dataset = load_image_dataset(args.data, model.config.data, splits=("valid",))
        return model, dataset, model.evaluate(dataset)

    print(f"{'figure':<34} {'model':<28} {'value':>9} {'unit':<8} {'target':<22} met")
    model, test, metrics = load(args.conv_ae)
    row(
        "conv AE reconstruction",
        args.conv_ae,
        metrics["bce_per_pixel"],
        "BCE/px",
        "<= 0.090",
        metrics["bce_per_pixel"] <= 0.090,
    )

    vae2d, _, metrics = load(args.vae2d)
    row(
        "2-d VAE negative ELBO",
        args.vae2d,
        metrics["neg_elbo_nats"],
        "nats",
        "<= 140",
        metrics["neg_elbo_nats"] <= 140.0,
    )
    row("  of which KL", args.vae2d, metrics["kl_nats"], "nats", "", None)

    if args.conv_vae:
        conv_vae, _, metrics = load(args.conv_vae)
        target = "<= 100" if conv_vae.z_size == 20 else f"(latent {conv_vae.z_size}-d)"
        row(
            "conv VAE negative ELBO",
            args.conv_vae,
            metrics["neg_elbo_nats"],
            "nats",
            target,
            metrics["neg_elbo_nats"] <= 100.0 if conv_vae.z_size == 20 else None,
        )
        row("  of which KL", args.conv_vae, metrics["kl_nats"], "nats", "", None)

    if args.denoising:
        denoiser, _, metrics = load(args.denoising)
        noise = f"{denoiser.corruption} {denoiser.config.model.noise_level}"
        row(
            f"denoising PSNR ({noise})",
            args.denoising,
            metrics["psnr_db"],
            "dB",
            f"> noisy {metrics['noisy_psnr_db']:.2f} dB",
            metrics["psnr_db"] > metrics["noisy_psnr_db"],
        )
        row("  noisy input PSNR", args.denoising, metrics["noisy_psnr_db"], "dB", "", None)

    if args.superres:
        upscaler, _, metrics = load(args.superres)
        factor = upscaler.config.model.downsample
        row(
            f"super-resolution PSNR (x{factor})",
            args.superres,
            metrics["psnr_db"],
            "dB",
            f"> bicubic {metrics['bicubic_psnr_db']:.2f} dB",
            metrics["psnr_db"] > metrics["bicubic_psnr_db"],
        )
        row("  bicubic PSNR", args.superres, metrics["bicubic_psnr_db"], "dB", "", None)

    images, labels = test.batch("valid", torch.arange(test.num_examples("valid")))
    images, labels = images.numpy(), labels.numpy()
    latent = vae2d.embed(images)
    latent = latent if vae2d.z_size == 2 else pca_2d(latent)
    fit = images
    if not missing_mnist_files(test.path, ("train",)):
        train = load_image_dataset(args.data, vae2d.config.data, splits=("train",))
        rows = torch.randperm(
            train.num_examples("train"), generator=torch.Generator().manual_seed(0)
        )
        fit = train.batch("train", rows[:10_000].sort().values)[0].numpy()
    fitted_on = "10k training images" if fit is not images else "the test images"
    pca_accuracy = knn_accuracy(pca_2d(images, fit), labels)
    latent_accuracy = knn_accuracy(latent, labels)
    row(
        "5-NN accuracy, 2-d VAE latent",
        args.vae2d,
        latent_accuracy,
        "",
        "> PCA",
        latent_accuracy > pca_accuracy,
    )
    row(f"5-NN accuracy, PCA (fit on {fitted_on})", "pixels", pca_accuracy, "", "", None)
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
