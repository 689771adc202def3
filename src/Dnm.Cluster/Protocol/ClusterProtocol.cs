using System.Reflection;

namespace Dnm.Cluster.Protocol;

/// <summary>Versions a worker announces; the coordinator refuses a worker whose versions differ from its own.</summary>
public static class ClusterProtocol
{
    /// <summary>Bumped whenever a message of this folder or the meaning of a field changes.</summary>
    public const int Version = 6;

    /// <summary>The Dnm build (informational version of Dnm.Cluster): replicas of different builds may compute differently.</summary>
    public static string DnmVersion { get; } =
        typeof(ClusterProtocol).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";
}
