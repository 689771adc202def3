using Dnm.Core.Training;

namespace Dnm.Node.Tests;

/// <summary>
/// Each lattice keeps the world-size invariance of <see cref="WorldSizeInvarianceSpec"/>: `dnm train --workers 2` ends
/// with a byte-identical final-metrics.json and a bitwise equal final.ckpt to one process, on a hex map, a toroidal
/// rect map and a toroidal hex map (the kernel, TE and the U-matrix all change with the lattice).
/// </summary>
public sealed class LatticeInvarianceSpec
{
    [Theory]
    [InlineData("conv", "hex", false)]
    [InlineData("mlp", "rect", true)]
    [InlineData("conv", "hex", true)]
    public async Task Train_with_2_workers_should_end_bitwise_equal_to_one_process(string encoder, string lattice, bool toroidal)
    {
        using var dir = new ScratchDirectory();
        var spec = SyntheticIdx.Spec(dir.Path, count: 200);
        string[] run =
        [
            "train", "--dataset", spec, "--map", "4x4", "--lattice", lattice, "--toroidal", toroidal ? "true" : "false",
            "--epochs", "2", "--pretrain-epochs", "1", "--som-iterations", "60",
            "--batch-size", "32", "--micro-batch", "4", "--seed", "11", "--device", "cpu", "--no-metrics",
            .. encoder == "mlp" ? new[] { "--encoder", "mlp", "--hidden", "32,16", "--latent", "6" } : ["--channels", "4,4,2", "--kernel", "3", "--latent", "8"],
        ];
        var variants = new (string Name, string[] Args)[]
        {
            ("single", ["--threads", "2"]),
            ("workers-2", ["--threads", "1", "--workers", "2"]),
        };
        foreach (var (name, args) in variants)
        {
            var result = await DnmProcess.RunAsync([.. run, "--out", dir.File(name), .. args], TimeSpan.FromMinutes(3));
            Assert.True(result.ExitCode == 0, $"{name}: {result.Error}{result.Out}");
        }

        var expectedMetrics = File.ReadAllText(Path.Combine(dir.File("single"), "final-metrics.json"));
        var expected = Checkpoint.Load(Path.Combine(dir.File("single"), "checkpoints", "final.ckpt"));
        Assert.Equal((lattice, toroidal), (Dnm.Core.Config.KebabEnum.Name(expected.Config.Lattice), expected.Config.Toroidal));
        var actual = Checkpoint.Load(Path.Combine(dir.File("workers-2"), "checkpoints", "final.ckpt"));
        Assert.Equal(expectedMetrics, File.ReadAllText(Path.Combine(dir.File("workers-2"), "final-metrics.json")));
        Assert.Equal(expected.State, actual.State);
        Assert.Equal(expected.AdamSteps, actual.AdamSteps);
        Assert.Equal(expected.Tensors.Select(t => t.Name), actual.Tensors.Select(t => t.Name));
        foreach (var (a, e) in actual.Tensors.Zip(expected.Tensors))
            Assert.True(a.Data.AsSpan().SequenceEqual(e.Data), $"workers-2: {a.Name} differs from the single process's");
    }
}
