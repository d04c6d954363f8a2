# Writes a small traced TorchScript model, as a user's own program would, for the CLI tests.
#   /usr/bin/python3 make_traced_model.py OUT.pt [--regression]
# --regression: one output per item and a second conv, so the accuracy loss is the continuous
# relative L2 distance (docs/accuracy.md, generic metric) and int8 ops differ in sensitivity.
import sys

import torch


class SmallNet(torch.nn.Module):
    def __init__(self, regression):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.conv2 = torch.nn.Conv2d(8, 8, 3, padding=1) if regression else None
        self.fc = torch.nn.Linear(8, 1 if regression else 4)

    def forward(self, image):
        x = torch.relu(self.bn(self.conv(image)))
        if self.conv2 is not None:
            x = torch.relu(self.conv2(x))
        return self.fc(x.mean(dim=(2, 3)))


torch.manual_seed(0)
model = SmallNet("--regression" in sys.argv[2:]).eval()
traced = torch.jit.trace(model, torch.randn(1, 3, 16, 16))
traced.save(sys.argv[1])
