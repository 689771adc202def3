using Dnm.Core.Config;
using Dnm.Core.Data;
using Dnm.Core.Training;

namespace Dnm.Fuzz.Targets;

/// <summary>
/// The checkpoint reader (`dnm eval`, `dnm map`, resume). Most mutations break the SHA-256, so the target also
/// re-hashes every input: afl++ then reaches the header and tensor checks behind the hash, as a hostile file with a
/// valid hash would.
/// </summary>
public sealed class CheckpointTarget : IFuzzTarget
{
    public string Name => "checkpoint";

    public void Run(byte[] input)
    {
        Load(input);
        if (input.Length >= 32)
        {
            var body = input.AsSpan(0, input.Length - 32);
            Load([.. body, .. System.Security.Cryptography.SHA256.HashData(body)]);
        }
    }

    private static void Load(byte[] bytes)
    {
        try
        {
            var checkpoint = Checkpoint.Load(InputFile.Write(bytes));
            _ = checkpoint.NonFiniteTensor();
        }
        catch (CheckpointException)
        {
        }
    }

    public IEnumerable<(string Name, byte[] Bytes)> Seeds()
    {
        // Tensors of the shapes the config implies, zero-filled: built without torch.
        foreach (var (name, config, shape) in new[]
                 {
                     ("mlp.ckpt", new DnmConfig { Encoder = EncoderKind.Mlp, Hidden = [3], Latent = 2, Map = "2x2", BatchSize = 4 }, new ImageShape(1, 3, 3)),
                     ("conv.ckpt", new DnmConfig { Channels = [2], Kernel = 3, Latent = 2, Map = "1x2", BatchSize = 4 }, new ImageShape(1, 2, 2)),
                 })
        {
            var tensors = EngineState.Layout(config, shape).Select(p => new NamedArray(p.Name, p.Shape, new float[p.Elements])).ToList();
            var path = Path.GetTempFileName();
            new Checkpoint(config, new RunState(), shape, 0, tensors).Save(path);
            yield return (name, File.ReadAllBytes(path));
            File.Delete(path);
        }
    }
}
