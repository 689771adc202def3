using Dnm.Core.Config; using Dnm.Core.Runtime;
var (d, r) = TorchRuntime.Initialize(DeviceSpec.Parse("cpu"), 0, Console.WriteLine);
Console.WriteLine(r);
Console.WriteLine(NumericsSelfCheck.Run(d));
