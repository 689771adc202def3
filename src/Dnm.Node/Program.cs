using TorchSharp;
using static TorchSharp.torch;
var x = torch.randn(4, 1, 28, 28);
var conv = nn.Conv2d(1, 10, 5, padding: 2);
var y = conv.forward(x);
Console.WriteLine($"ok {y.shape[1]} {torch.get_num_threads()}");
