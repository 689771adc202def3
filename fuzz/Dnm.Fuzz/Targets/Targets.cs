namespace Dnm.Fuzz.Targets;

/// <summary>Every fuzz target, by name.</summary>
public static class Targets
{
    public static readonly IReadOnlyList<IFuzzTarget> All = [new IdxTarget(), new ConfigTarget(), new CheckpointTarget(), new ImageTarget(), new TarTarget()];
}
