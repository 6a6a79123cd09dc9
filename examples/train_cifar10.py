"""Train MIN on CIFAR-10 with the Python API: GCN + ZCA whitening, random crops and flips.

    python examples/train_cifar10.py --download --device cuda      # the full run, on a GPU
    python examples/train_cifar10.py --model min-small --limit 2000 --epochs 2   # a CPU trial

The preprocessing of the NIN paper (Lin et al.; Chang & Chen's MIN paper
standardizes each image instead): every image is contrast-normalized
(mean 0, fixed L2 norm), then the data set is ZCA-whitened with statistics of
the training images; during training each batch is randomly cropped from the
image padded by 4 pixels and mirrored half of the time.  train_mnist.py
explains the loop line by line; ``minidl train --dataset cifar10`` runs the
same recipe with checkpoints and a learning-rate warm-up.
"""
import argparse

import minidl
import minidl.functional as F
from minidl.data import DataLoader, load
from minidl.data.transforms import (Compose, GlobalContrastNormalization, RandomCrop,
                                    RandomHorizontalFlip, ZCAWhitening)
from minidl.models import available, create
from minidl.optim import SGD, CosineAnnealingLR, weight_decay_groups
from minidl.train import evaluate


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=tuple(available()), default="min")
    parser.add_argument("--data-dir", metavar="DIR",
                        help="data root; CIFAR-10 lives in DIR/cifar10 "
                             "(default $MINIDL_DATA or ~/.cache/minidl)")
    parser.add_argument("--download", action="store_true",
                        help="fetch CIFAR-10 (a 170 MB archive) if it is missing")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.1, help="peak learning rate")
    parser.add_argument("--limit", type=int, metavar="N",
                        help="use only the first N training (and at most N test) images")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    minidl.manual_seed(args.seed)
    train_x, train_y = load("cifar10", root=args.data_dir, download=args.download)
    test_x, test_y = load("cifar10", root=args.data_dir, split="test", download=args.download)
    train_x, train_y = train_x[:args.limit], train_y[:args.limit]
    test_x, test_y = test_x[:args.limit], test_y[:args.limit]

    # fitted on the training images only, then applied once to both sets; ZCA finds the
    # eigenvectors of a 3072 x 3072 covariance, which takes a while on a CPU
    print("fitting GCN + ZCA whitening on the training images ...", flush=True)
    preprocess = Compose([GlobalContrastNormalization(), ZCAWhitening()]).fit(train_x)
    train_x, test_x = preprocess(train_x), preprocess(test_x)
    # random, so applied per batch by the loader, with a generator it seeds every epoch
    augment = Compose([RandomCrop(32, padding=4), RandomHorizontalFlip()])
    train_loader = DataLoader((train_x, train_y), args.batch_size, shuffle=True, seed=args.seed,
                              prefetch=2, transform=augment)
    test_loader = DataLoader((test_x, test_y), batch_size=500)

    model = create(args.model, "cifar10").to(args.device)
    optimizer = SGD(weight_decay_groups(model.named_parameters(), 5e-4), lr=args.lr,
                    momentum=0.9)
    schedule = CosineAnnealingLR(optimizer, T_max=args.epochs * len(train_loader))
    print(f"{args.model} ({model.num_parameters():,} parameters) on {len(train_y):,} CIFAR-10 "
          f"training images, {args.device}")

    history = []
    for epoch in range(1, args.epochs + 1):
        loss_sum = 0.0
        for images, labels in train_loader:
            x = minidl.tensor(images, device=args.device)
            y = minidl.tensor(labels, device=args.device)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            loss_sum += loss.item() * len(labels)
        test_loss, test_accuracy = evaluate(model, test_loader)   # eval mode, no_grad
        history.append({"train_loss": loss_sum / train_loader.num_samples(),
                        "test_loss": test_loss, "test_accuracy": test_accuracy})
        print(f"epoch {epoch}/{args.epochs}  train loss {history[-1]['train_loss']:.4f}  "
              f"test loss {test_loss:.4f}  test accuracy {100 * test_accuracy:.1f}%", flush=True)
    return history


if __name__ == "__main__":
    main()
