using Dnm.Core.Config;
using Dnm.Core.Data;
using Dnm.Core.Training;
using static TorchSharp.torch;

namespace Dnm.Cluster.Replica;

/// <summary>Builds step engines and moves their state in and out of one flat vector (a State frame).</summary>
public static class ReplicaFactory
{
    /// <summary>An engine for a replica (StepEngine serialises the seeded model builds itself).</summary>
    public static StepEngine Create(DnmConfig config, ImageShape shape, Device device, int maxLocalBatch, int classes = 0) =>
        new(config, shape, device, Math.Max(1, maxLocalBatch), classes);

    /// <summary>Every exported tensor, in <see cref="EngineState.Export"/> order, in one vector.</summary>
    public static float[] Flatten(IReadOnlyList<NamedArray> arrays)
    {
        var flat = new float[arrays.Sum(a => a.Data.Length)];
        var offset = 0;
        foreach (var a in arrays)
        {
            a.Data.CopyTo(flat, offset);
            offset += a.Data.Length;
        }
        return flat;
    }

    /// <summary>Cuts a flat state vector into the names and shapes of <paramref name="template"/> (this replica's own export).</summary>
    public static IReadOnlyList<NamedArray> Unflatten(ReadOnlySpan<float> flat, IReadOnlyList<NamedArray> template)
    {
        var total = template.Sum(a => a.Data.Length);
        if (flat.Length != total)
            throw new CheckpointException($"the state has {flat.Length} floats but this model holds {total}: the model configuration differs");
        var result = new List<NamedArray>(template.Count);
        var offset = 0;
        foreach (var t in template)
        {
            result.Add(t with { Data = flat.Slice(offset, t.Data.Length).ToArray() });
            offset += t.Data.Length;
        }
        return result;
    }

    public static int StateLength(StepEngine engine) =>
        engine.Parameters.Sum(p => (int)p.numel()) * 3 + engine.Som.Nodes * engine.Som.Dim + (engine.Classes?.Counts.Length ?? 0);
}
