"""A training script in plain PyTorch style runs unchanged on minidl, only the imports differ.

The same source text runs once with ``torch`` and once with minidl under the
same names; data and initial weights come from NumPy, so the two runs must
give the same losses, accuracy and outputs (float64).
"""
import numpy
import pytest

torch = pytest.importorskip("torch")

IMPORTS = {
    "torch": "import torch\nfrom torch import nn\n"
             "from torch.utils.data import DataLoader, TensorDataset\n",
    "minidl": "import minidl as torch\nfrom minidl import nn\n"
              "from minidl.data import DataLoader, TensorDataset\n",
}

SCRIPT = '''
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(16, 12), nn.Linear(12, 3)])
        self.act = nn.ReLU()

    def forward(self, x):
        x = x.view(x.size(0), -1)
        for layer in self.layers[:-1]:
            x = self.act(layer(x))
        return self.layers[-1](x)


model = Net().to(dtype=torch.float64)
model.load_state_dict({name: torch.tensor(value) for name, value in WEIGHTS.items()})
loader = DataLoader(TensorDataset(torch.tensor(X), torch.tensor(Y)), batch_size=8)
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
losses, norms = [], []
for epoch in range(3):
    model.train()
    for x, y in loader:
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        norms.append(nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0).item())
        optimizer.step()
        losses.append(loss.item())

model.eval()
correct = 0
with torch.no_grad():
    for x, y in loader:
        probs = model(x).softmax(dim=1)
        correct += (probs.argmax(dim=1) == y).sum().item()
    logits = torch.cat([model(x) for x, _ in loader], dim=0)
accuracy = correct / len(loader.dataset)
best, label = logits.max(dim=1)
summary = logits.mean(dim=0, keepdim=True).transpose(0, 1).flatten()
'''


def run(framework, inputs):
    namespace = dict(inputs)
    exec(IMPORTS[framework] + SCRIPT, namespace)
    as_numpy = (lambda t: t.numpy()) if framework == "minidl" else (lambda t: t.detach().numpy())
    return {"losses": numpy.array(namespace["losses"]), "norms": numpy.array(namespace["norms"]),
            "accuracy": namespace["accuracy"], "best": as_numpy(namespace["best"]),
            "label": as_numpy(namespace["label"]), "summary": as_numpy(namespace["summary"])}


def test_the_same_pytorch_script_gives_the_same_run_on_minidl():
    rng = numpy.random.default_rng(0)
    x = rng.standard_normal((36, 1, 4, 4))
    inputs = {"X": x, "Y": (x.reshape(36, -1)[:, :3].argmax(axis=1)).astype(numpy.int64),
              "WEIGHTS": {"layers.0.weight": rng.standard_normal((12, 16)) * 0.3,
                          "layers.0.bias": rng.standard_normal(12) * 0.1,
                          "layers.1.weight": rng.standard_normal((3, 12)) * 0.3,
                          "layers.1.bias": numpy.zeros(3)}}
    ours, theirs = run("minidl", inputs), run("torch", inputs)
    assert len(ours["losses"]) == 15 and ours["losses"][-1] < ours["losses"][0]
    assert ours["accuracy"] == theirs["accuracy"] > 0.5
    numpy.testing.assert_array_equal(ours["label"], theirs["label"])
    for key in ("losses", "norms", "best", "summary"):
        numpy.testing.assert_allclose(ours[key], theirs[key], rtol=1e-9, atol=1e-12, err_msg=key)
