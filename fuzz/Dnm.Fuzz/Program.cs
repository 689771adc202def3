using Dnm.Fuzz;
using Dnm.Fuzz.Targets;
using SharpFuzz;

// dnm-fuzz TARGET            run under afl++ (scripts/fuzz.sh)
// dnm-fuzz TARGET FILE...    run the target once on each file (reproduce a crash)
// dnm-fuzz seed TARGET DIR   write the target's seed corpus
if (args.Length == 3 && args[0] == "seed")
{
    var seeded = Find(args[1]);
    Directory.CreateDirectory(args[2]);
    foreach (var (name, bytes) in seeded.Seeds()) File.WriteAllBytes(Path.Combine(args[2], name), bytes);
    return 0;
}
if (args.Length == 0)
{
    Console.Error.WriteLine($"usage: dnm-fuzz TARGET [FILE...] | dnm-fuzz seed TARGET DIR; targets: {string.Join(", ", Targets.All.Select(t => t.Name))}");
    return 2;
}
var target = Find(args[0]);
if (args.Length > 1)
{
    foreach (var file in args.Skip(1)) target.Run(File.ReadAllBytes(file));
    return 0;
}
Fuzzer.OutOfProcess.Run(stream =>
{
    using var memory = new MemoryStream();
    stream.CopyTo(memory);
    target.Run(memory.ToArray());
});
return 0;

static IFuzzTarget Find(string name) =>
    Targets.All.FirstOrDefault(t => t.Name == name)
    ?? throw new ArgumentException($"no fuzz target '{name}'; targets: {string.Join(", ", Targets.All.Select(t => t.Name))}");
