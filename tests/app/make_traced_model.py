# Writes a small traced TorchScript model, as a user's own program would, for the CLI tests.
#   /usr/bin/python3 make_traced_model.py OUT.pt
import sys

import torch


class SmallNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.fc = torch.nn.Linear(8, 4)

    def forward(self, image):
        x = torch.relu(self.bn(self.conv(image)))
        return self.fc(x.mean(dim=(2, 3)))


torch.manual_seed(0)
model = SmallNet().eval()
traced = torch.jit.trace(model, torch.randn(1, 3, 16, 16))
traced.save(sys.argv[1])
