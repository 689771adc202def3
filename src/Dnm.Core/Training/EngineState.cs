using TorchSharp;
using static TorchSharp.torch;

namespace Dnm.Core.Training;

/// <summary>
/// Moves a replica's long-lived state (θ, φ, Adam m and v, W) to and from host arrays: for
/// checkpoints, for a worker that joins mid-run, and for the replica checksum.
/// </summary>
public static class EngineState
{
    public static IReadOnlyList<NamedArray> Export(StepEngine engine)
    {
        var list = new List<NamedArray>();
        var names = engine.Model.named_parameters().Select(p => p.name).ToArray();
        for (int i = 0; i < names.Length; i++)
        {
            list.Add(ToArray($"param/{names[i]}", engine.Parameters[i]));
            list.Add(ToArray($"adam.m/{names[i]}", engine.Optimizer.FirstMoments[i]));
            list.Add(ToArray($"adam.v/{names[i]}", engine.Optimizer.SecondMoments[i]));
        }
        list.Add(ToArray("som/w", engine.Som.Prototypes));
        return list;
    }

    /// <summary>Loads exported state; any missing tensor or shape difference is a clear error.</summary>
    public static void Import(StepEngine engine, IReadOnlyList<NamedArray> arrays, long adamSteps)
    {
        var byName = arrays.ToDictionary(a => a.Name);
        var names = engine.Model.named_parameters().Select(p => p.name).ToArray();
        using var _ = no_grad();
        for (int i = 0; i < names.Length; i++)
        {
            Load(byName, $"param/{names[i]}", engine.Parameters[i]);
            Load(byName, $"adam.m/{names[i]}", engine.Optimizer.FirstMoments[i]);
            Load(byName, $"adam.v/{names[i]}", engine.Optimizer.SecondMoments[i]);
        }
        Load(byName, "som/w", engine.Som.Prototypes);
        engine.Optimizer.Steps = adamSteps;
    }

    /// <summary>
    /// A 64-bit FNV-1a hash of the bit patterns of θ, φ and W. Replicas that applied identical
    /// updates have identical bits, so any difference means they diverged.
    /// </summary>
    public static ulong Checksum(StepEngine engine)
    {
        ulong h = 14695981039346656037UL;
        foreach (var t in engine.Parameters.Cast<Tensor>().Append(engine.Som.Prototypes))
        {
            using var host = t.detach().cpu().contiguous();
            foreach (var b in System.Runtime.InteropServices.MemoryMarshal.AsBytes(host.data<float>().ToArray().AsSpan()))
            {
                h ^= b;
                h *= 1099511628211UL;
            }
        }
        return h;
    }

    private static NamedArray ToArray(string name, Tensor t)
    {
        using var host = t.detach().cpu().contiguous();
        return new NamedArray(name, t.shape.ToArray(), host.data<float>().ToArray());
    }

    private static void Load(Dictionary<string, NamedArray> byName, string name, Tensor target)
    {
        if (!byName.TryGetValue(name, out var a))
            throw new CheckpointException($"state has no tensor '{name}': it was written for a different model");
        if (!a.Shape.SequenceEqual(target.shape))
            throw new CheckpointException(
                $"tensor '{name}' has shape [{string.Join(",", a.Shape)}] but this model needs [{string.Join(",", target.shape)}]: the model configuration differs");
        target.copy_(torch.tensor(a.Data, a.Shape, dtype: float32, device: target.device));
    }
}
