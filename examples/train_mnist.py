"""Train a small MIN model on handwritten digits with the Python API, the loop written out.

    python examples/train_mnist.py                          # digits, shipped with minidl: offline
    python examples/train_mnist.py --limit 512 --epochs 2   # a run of seconds
    python examples/train_mnist.py --limit 512 --epochs 2 --precise-bn 8
    python examples/train_mnist.py --dataset mnist --download --epochs 10

Every piece is in sight: data, normalization, model, optimizer, schedule, and
the loop that ties them together.  ``minidl train`` runs the same recipe
(``minidl.recipes``) through ``minidl.train.Trainer``, which adds
checkpoints, resuming and a progress bar.
"""
import argparse

import minidl
import minidl.functional as F
from minidl.data import DataLoader, load
from minidl.data.transforms import Normalize
from minidl.models import create
from minidl.nn.utils import update_bn_stats
from minidl.optim import SGD, CosineAnnealingLR, weight_decay_groups


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=("digits", "mnist"), default="digits",
                        help="digits: 4,000 + 1,000 images shipped with minidl (default); "
                             "mnist: 60,000 + 10,000, downloaded with --download")
    parser.add_argument("--download", action="store_true", help="fetch MNIST if it is missing")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.1, help="peak learning rate")
    parser.add_argument("--limit", type=int, metavar="N",
                        help="use only the first N training (and at most N test) images")
    parser.add_argument("--dropout", type=float, default=0.0,
                        help="dropout after blocks 1 and 2 (default 0: short runs learn faster "
                             "without; the papers use 0.5)")
    parser.add_argument("--precise-bn", type=int, metavar="N",
                        help="after each epoch, re-estimate the batch-norm statistics over N "
                             "training batches with the final weights (docs/batch_norm.md)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def accuracy(model, loader, device):
    """The share of images whose largest logit is the label's (minidl.train.evaluate does
    the same, and the loss too, with fewer copies from the device)."""
    model.eval()                    # batch norm uses its running statistics, dropout is off
    correct = 0
    with minidl.no_grad():          # no graph is recorded: less memory, less time
        for images, labels in loader:
            logits = model(minidl.tensor(images, device=device))
            correct += int((logits.argmax(axis=1).numpy() == labels).sum())
    model.train()
    return correct / loader.num_samples()


def main(argv=None):
    args = parse_args(argv)
    minidl.manual_seed(args.seed)   # the initial weights and dropout masks
    train_x, train_y = load(args.dataset, split="train", download=args.download)
    test_x, test_y = load(args.dataset, split="test", download=args.download)
    train_x, train_y = train_x[:args.limit], train_y[:args.limit]   # [:None] keeps all
    test_x, test_y = test_x[:args.limit], test_y[:args.limit]
    # mean and standard deviation of the training images only: the test set must not leak in
    normalize = Normalize().fit(train_x)
    train_loader = DataLoader((normalize(train_x), train_y), args.batch_size, shuffle=True,
                              seed=args.seed)
    test_loader = DataLoader((normalize(test_x), test_y), batch_size=500)

    model = create("min-small", args.dataset, dropout=args.dropout).to(args.device)
    # no weight decay on biases and batch-norm scales and shifts
    optimizer = SGD(weight_decay_groups(model.named_parameters(), 5e-4), lr=args.lr,
                    momentum=0.9)
    # stepped every iteration: the rate falls from lr to 0 along a half cosine
    schedule = CosineAnnealingLR(optimizer, T_max=args.epochs * len(train_loader))
    print(f"min-small ({model.num_parameters():,} parameters) on {len(train_y):,} {args.dataset} "
          f"training images, {args.device}")

    history = []
    for epoch in range(1, args.epochs + 1):
        loss_sum, correct = 0.0, 0
        for images, labels in train_loader:
            x = minidl.tensor(images, device=args.device)
            y = minidl.tensor(labels, device=args.device)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad()   # backward adds to .grad: clear the last step's
            loss.backward()
            optimizer.step()
            schedule.step()
            loss_sum += loss.item() * len(labels)   # item() waits for a GPU: fine here
            # in training mode, with each batch's own statistics, as the weights moved
            correct += int((logits.argmax(axis=1).numpy() == labels).sum())
        if args.precise_bn:
            # the running statistics trail the moving weights: measure them afresh, then put
            # the loader's generator back, so that the next epoch trains as it would have
            state = train_loader.state_dict()
            update_bn_stats(model, train_loader, batches=args.precise_bn)
            train_loader.load_state_dict(state)
        history.append({"train_loss": loss_sum / train_loader.num_samples(),
                        "train_accuracy": correct / train_loader.num_samples(),
                        "test_accuracy": accuracy(model, test_loader, args.device)})
        print(f"epoch {epoch}/{args.epochs}  train loss {history[-1]['train_loss']:.4f}  "
              f"train accuracy {100 * history[-1]['train_accuracy']:.1f}%  "
              f"test accuracy {100 * history[-1]['test_accuracy']:.1f}%", flush=True)
    return history


if __name__ == "__main__":
    main()
