using Dnm.Core.Training;

namespace Dnm.Node.Tests;

/// <summary>
/// `dnm train` in one process and `dnm train --workers N` end with the same map to the bit: byte-identical
/// final-metrics.json and bitwise equal final.ckpt tensors, for both encoders. Each run is a child process, as a user
/// starts it; the single process also runs with another thread count.
/// </summary>
public sealed class WorldSizeInvarianceSpec
{
    [Theory]
    [InlineData("conv")]
    [InlineData("mlp")]
    public async Task Train_with_1_2_and_4_workers_should_end_bitwise_equal_to_one_process(string encoder)
    {
        using var dir = new ScratchDirectory();
        var spec = SyntheticIdx.Spec(dir.Path, count: 200);
        // 200 samples in batches of 32: 7 steps an epoch, the last of 8 samples. Micro-batches of 4: 8 per full batch,
        // 2 in the last, so a world of 4 has idle ranks there.
        string[] run =
        [
            "train", "--dataset", spec, "--map", "4x4", "--epochs", "2", "--pretrain-epochs", "1", "--som-iterations", "60",
            "--batch-size", "32", "--micro-batch", "4", "--seed", "11", "--device", "cpu", "--no-metrics",
            .. encoder == "mlp" ? new[] { "--encoder", "mlp", "--hidden", "32,16", "--latent", "6" } : ["--channels", "4,4,2", "--kernel", "3", "--latent", "8"],
        ];
        var variants = new (string Name, string[] Args)[]
        {
            ("single", ["--threads", "2"]),
            ("workers-1", ["--threads", "1", "--workers", "1"]),
            ("workers-2", ["--threads", "1", "--workers", "2"]),
            ("workers-4", ["--threads", "1", "--workers", "4"]),
        };
        foreach (var (name, args) in variants)
        {
            var result = await DnmProcess.RunAsync([.. run, "--out", dir.File(name), .. args], TimeSpan.FromMinutes(3));
            Assert.True(result.ExitCode == 0, $"{name}: {result.Error}{result.Out}");
        }

        var expectedMetrics = File.ReadAllText(Path.Combine(dir.File("single"), "final-metrics.json"));
        var expected = Checkpoint.Load(Path.Combine(dir.File("single"), "checkpoints", "final.ckpt"));
        foreach (var (name, _) in variants.Skip(1))
        {
            Assert.Equal(expectedMetrics, File.ReadAllText(Path.Combine(dir.File(name), "final-metrics.json")));
            var actual = Checkpoint.Load(Path.Combine(dir.File(name), "checkpoints", "final.ckpt"));
            Assert.Equal(expected.State, actual.State);
            Assert.Equal(expected.AdamSteps, actual.AdamSteps);
            Assert.Equal(expected.Tensors.Select(t => t.Name), actual.Tensors.Select(t => t.Name));
            foreach (var (a, e) in actual.Tensors.Zip(expected.Tensors))
                Assert.True(a.Data.AsSpan().SequenceEqual(e.Data), $"{name}: {a.Name} differs from the single process's");
        }
    }
}
