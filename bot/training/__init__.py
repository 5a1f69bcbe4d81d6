"""Training: a project into a model folder (models/), and the pieces read back from it.

    train.py        `xingkong train`: which parts changed, in what order, side by side
    fingerprints.py what each part is built from (an unchanged part is skipped)
    parallel.py     the spawned side job (knowledge, then policies) and the threads per job
    report.py       TrainReport and each stage's timing
    core.py         the policies (train_core, load_policies)
    nlu.py          the Transformer NLU pipeline
    knowledge.py    the knowledge answers: the KB folder, its build, index and evaluation
    generation.py   the small-talk generator
    model_dir.py    the models/ layout, and which model folder a command reads
"""
